/// Errors from loading weights or configurations that came from outside (a file, a request).
public enum NeuralNetError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The model needs this tensor and the file does not have it.
    case missingTensor(name: String)
    /// The file has a tensor the model does not use.
    case unusedTensor(name: String)
    /// The tensor exists with another shape than the model's.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A required configuration key is absent.
    case missingMetadata(key: String)
    /// A configuration value does not parse or is out of range.
    case invalidMetadata(key: String, value: String)
    /// The `architecture` key names a network this library does not build.
    case unsupportedArchitecture(String)
    /// The configuration is inconsistent (for example pieces too small for the pooling depth).
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case .missingTensor(let name): "missing tensor '\(name)'"
        case .unusedTensor(let name): "unused tensor '\(name)'"
        case .shapeMismatch(let tensor, let expected, let found):
            "tensor '\(tensor)' has shape \(found), expected \(expected)"
        case .missingMetadata(let key): "missing metadata key '\(key)'"
        case .invalidMetadata(let key, let value): "invalid value '\(value)' for metadata key '\(key)'"
        case .unsupportedArchitecture(let name): "unsupported architecture '\(name)'"
        case .invalidConfiguration(let reason): "invalid configuration: \(reason)"
        }
    }
}
