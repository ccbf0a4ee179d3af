import NeuralNet
