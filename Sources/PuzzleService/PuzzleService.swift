import Jigsaw
import HTTPCore
