/// Typed readers of `__metadata__` string maps; a bad entry throws an error that names its key.
extension Dictionary where Key == String, Value == String {
    /// A required (when `default` is nil) or optional integer entry.
    public func integer(_ key: String, default fallback: Int? = nil) throws -> Int {
        guard let text = self[key] else {
            if let fallback { return fallback }
            throw NeuralNetError.missingMetadata(key: key)
        }
        guard let value = Int(text.trimmingWhitespace()) else {
            throw NeuralNetError.invalidMetadata(key: key, value: text)
        }
        return value
    }

    /// An optional `0` / `1` flag, off when absent.
    public func flag(_ key: String) throws -> Bool {
        guard let text = self[key] else { return false }
        switch text.trimmingWhitespace() {
        case "0": return false
        case "1": return true
        default: throw NeuralNetError.invalidMetadata(key: key, value: text)
        }
    }

    /// An optional comma-separated list of finite floats.
    public func floats(_ key: String, default fallback: [Float]) throws -> [Float] {
        guard let text = self[key] else { return fallback }
        var values: [Float] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let value = Float(String(part).trimmingWhitespace()), value.isFinite else {
                throw NeuralNetError.invalidMetadata(key: key, value: text)
            }
            values.append(value)
        }
        return values
    }

    /// An optional finite float.
    public func float(_ key: String, default fallback: Float) throws -> Float {
        guard let text = self[key] else { return fallback }
        guard let value = Float(text.trimmingWhitespace()), value.isFinite else {
            throw NeuralNetError.invalidMetadata(key: key, value: text)
        }
        return value
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return String(slice)
    }
}
