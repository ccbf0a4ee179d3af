#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@inlinable func _pow(_ x: Float, _ y: Float) -> Float { powf(x, y) }
@inlinable func _cos(_ x: Float) -> Float { cosf(x) }
