import Foundation

/// A value that writes its own JSON: the same bytes ``ResponseEncoding/encoder()`` would produce
/// (snake-case keys in sorted order, unescaped slashes, floats as their shortest round-trip
/// `description` without a trailing `.0`), in one pass over a byte buffer instead of through
/// `JSONEncoder`'s intermediate tree and per-key case conversion.
///
/// The solve answer is written on every request; through `JSONEncoder` it cost about an eighth of
/// the server's CPU time under load (`perf`, `mnist-3x3`, 16 connections). The tests compare each
/// writer with `JSONEncoder`'s output byte for byte.
package protocol JSONWritable: Encodable {
    func write(to writer: inout JSONWriter) throws(JSONWriter.Failure)
}

/// Appends JSON tokens to a byte buffer. Objects are written with ``object(_:)`` whose body
/// names its fields with ``field(_:_:)`` in sorted key order (the caller's duty; the tests check
/// it against `JSONEncoder`).
package struct JSONWriter {
    /// A float JSON cannot carry.
    package struct Failure: Error, CustomStringConvertible {
        package var description: String
    }

    package private(set) var bytes: [UInt8] = []
    private var needsComma = false

    package init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    /// `{ … }`; `body` writes the fields.
    package mutating func object(_ body: (inout JSONWriter) throws(Failure) -> Void) throws(Failure) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        try body(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// `[ … ]` of `elements`, each written by `element`.
    package mutating func array<S: Sequence>(_ elements: S,
                                     _ element: (inout JSONWriter, S.Element) throws(Failure) -> Void) throws(Failure) {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        for value in elements { try element(&self, value) }
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// `"key":` followed by the value `body` writes.
    package mutating func field(_ key: String, _ body: (inout JSONWriter) throws(Failure) -> Void) throws(Failure) {
        separate()
        appendQuoted(key)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
        try body(&self)
        needsComma = true
    }

    package mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
    }

    package mutating func integer<T: BinaryInteger>(_ value: T) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    package mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    /// A float as `JSONEncoder` writes it: `description`, less a trailing `.0`; non-finite
    /// values are refused.
    package mutating func number<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F) throws(Failure) {
        guard value.isFinite else { throw Failure(description: "a non-finite number (\(value)) cannot be written as JSON") }
        separate()
        let start = bytes.count
        bytes.append(contentsOf: value.description.utf8)
        let end = bytes.count
        if end - start >= 2, bytes[end - 2] == UInt8(ascii: "."), bytes[end - 1] == UInt8(ascii: "0") { bytes.removeLast(2) }
    }

    // MARK: - Optional fields (absent when nil, as `JSONEncoder` omits them)

    package mutating func field(_ key: String, string value: String?) throws(Failure) {
        guard let value else { return }
        try field(key) { $0.string(value) }
    }

    package mutating func field<T: BinaryInteger>(_ key: String, integer value: T?) throws(Failure) {
        guard let value else { return }
        try field(key) { $0.integer(value) }
    }

    package mutating func field<F: BinaryFloatingPoint & CustomStringConvertible>(_ key: String, number value: F) throws(Failure) {
        try field(key) { (writer: inout JSONWriter) throws(Failure) in try writer.number(value) }
    }

    package mutating func field(_ key: String, value: (some JSONWritable)?) throws(Failure) {
        guard let value else { return }
        try field(key) { (writer: inout JSONWriter) throws(Failure) in try value.write(to: &writer) }
    }

    package mutating func field<T: BinaryInteger>(_ key: String, integers values: [T]?) throws(Failure) {
        guard let values else { return }
        try field(key) { (writer: inout JSONWriter) throws(Failure) in try writer.array(values) { $0.integer($1) } }
    }

    package mutating func field<F: BinaryFloatingPoint & CustomStringConvertible>(_ key: String, numbers values: [F]?) throws(Failure) {
        guard let values else { return }
        try field(key) { (writer: inout JSONWriter) throws(Failure) in
            try writer.array(values) { (writer: inout JSONWriter, value: F) throws(Failure) in try writer.number(value) }
        }
    }

    package mutating func field(_ key: String, strings values: [String]?) throws(Failure) {
        guard let values else { return }
        try field(key) { (writer: inout JSONWriter) throws(Failure) in try writer.array(values) { $0.string($1) } }
    }

    package mutating func field<F: BinaryFloatingPoint & CustomStringConvertible>(_ key: String, rows: [[F]]?) throws(Failure) {
        guard let rows else { return }
        try field(key) { (writer: inout JSONWriter) throws(Failure) in
            try writer.array(rows) { (writer: inout JSONWriter, row: [F]) throws(Failure) in
                try writer.array(row) { (writer: inout JSONWriter, value: F) throws(Failure) in try writer.number(value) }
            }
        }
    }

    /// An object of a string-keyed dictionary, keys in `JSONEncoder`'s sorted order.
    package mutating func field<F: BinaryFloatingPoint & CustomStringConvertible>(_ key: String, numbersByKey values: [String: F]) throws(Failure) {
        try field(key) { (writer: inout JSONWriter) throws(Failure) in
            try writer.object { (writer: inout JSONWriter) throws(Failure) in
                for name in JSONWriter.sortedKeys(values.keys) {
                    try writer.field(name, number: values[name]!)
                }
            }
        }
    }

    /// Keys in the order `JSONEncoder`'s `.sortedKeys` writes them: by their UTF-8 bytes ("10" before "2").
    package static func sortedKeys(_ keys: some Sequence<String>) -> [String] {
        keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    // MARK: - Strings

    private static let hexDigits = Array("0123456789abcdef".utf8)

    private mutating func appendQuoted(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\")); bytes.append(byte)
            case 0x08: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "f"))
            case 0x0A: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "\\")); bytes.append(UInt8(ascii: "t"))
            case 0x00..<0x20:
                bytes.append(contentsOf: Array("\\u00".utf8))
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

// MARK: - The solve answer and its parts

extension PuzzleLinks: JSONWritable {
    package func write(to writer: inout JSONWriter) throws(JSONWriter.Failure) {
        try writer.object { (w: inout JSONWriter) throws(JSONWriter.Failure) in
            try w.field("scrambled", string: scrambled)
            try w.field("self", string: puzzle)
            try w.field("soft", string: soft)
            try w.field("solution", string: solution)
        }
    }
}

extension SoftMatrixBody: JSONWritable {
    package func write(to writer: inout JSONWriter) throws(JSONWriter.Failure) {
        try writer.object { (w: inout JSONWriter) throws(JSONWriter.Failure) in
            try w.field("iterations", integer: iterations)
            try w.field("matrix", rows: matrix)
            try w.field("row_marginal_error", number: rowMarginalError)
            try w.field("tau", number: tau)
        }
    }
}

extension GridDetectionBody: JSONWritable {
    package func write(to writer: inout JSONWriter) throws(JSONWriter.Failure) {
        try writer.object { (w: inout JSONWriter) throws(JSONWriter.Failure) in
            try w.field("confidence", number: confidence)
            try w.field("grid", integer: grid)
            try w.field("scores", numbersByKey: scores)
        }
    }
}

extension SampleBody: JSONWritable {
    package func write(to writer: inout JSONWriter) throws(JSONWriter.Failure) {
        try writer.object { (w: inout JSONWriter) throws(JSONWriter.Failure) in
            try w.field("dataset", string: dataset)
            try w.field("index", integer: index)
            try w.field("label", integer: label)
            try w.field("seed", integer: seed)
        }
    }
}

extension PuzzleBody: JSONWritable {
    package func write(to writer: inout JSONWriter) throws(JSONWriter.Failure) {
        try writer.object { (w: inout JSONWriter) throws(JSONWriter.Failure) in
            try w.field("confidence", numbers: confidence)
            try w.field("correct_pieces", integer: correctPieces)
            try w.field("created", string: created)
            try w.field("grid", integer: grid)
            try w.field("grid_detection", value: gridDetection)
            try w.field("id", string: id)
            try w.field("links", value: links)
            try w.field("model", string: model)
            try w.field("origin", string: origin)
            try w.field("permutation", integers: permutation)
            try w.field("reconstruction", string: reconstruction)
            try w.field("reconstruction_type", string: reconstructionType)
            try w.field("sample", value: sample)
            try w.field("scores", rows: scores)
            try w.field("scrambled", string: scrambled)
            try w.field("soft", value: soft)
            try w.field("truth", integers: truth)
            try w.field("warnings", strings: warnings)
        }
    }
}
