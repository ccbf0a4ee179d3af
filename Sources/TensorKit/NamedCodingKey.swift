/// A coding key made from any string, for JSON objects whose keys are data (benchmark fields,
/// a report that adds a key beside another type's encoding).
public struct NamedCodingKey: CodingKey, Sendable {
    public var stringValue: String
    public init(_ name: String) { stringValue = name }
    public init(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { nil }
}
