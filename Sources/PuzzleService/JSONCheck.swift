import Foundation

/// A check of a JSON body (RFC 8259) before it is decoded, for what `JSONDecoder` reports
/// badly or not at all: where the syntax breaks, a number beyond float64 (RFC 8259 §6 leaves
/// its handling to the implementation; Foundation calls the whole body invalid), and duplicate
/// member names (§4 says they SHOULD be unique and leaves behaviour unpredictable: the service
/// refuses them, so a request never means something other than what its sender read).
///
/// - Complexity: one pass over the bytes, memory proportional to the nesting depth and the
///   member names of the open objects.
public enum JSONCheck {
    /// Deepest nesting accepted (`[[[…]]]` beyond this is refused, not recursed into).
    public static let maximumDepth = 512

    /// A container being read: an object with its member names so far, or an array and its index.
    private enum Frame {
        case object(names: Set<String>, current: String?)
        case array(index: Int)
    }

    /// Throws `invalid_json` naming the place of the first problem: a syntax error (with its byte
    /// offset), a duplicate member name or a number float64 cannot hold (with the member's path).
    public static func check(_ bytes: [UInt8]) throws(ServiceError) {
        var position = 0
        var stack: [Frame] = []

        func path() -> String {
            var text = ""
            for frame in stack {
                switch frame {
                case .object(_, let current?): text += text.isEmpty ? current : ".\(current)"
                case .object(_, nil): break
                case .array(let index): text += "[\(index)]"
                }
            }
            return text.isEmpty ? "the body" : ServiceError.excerpt(text)
        }
        func fail(_ message: String) -> ServiceError {
            .invalidJSON("\(message) at byte \(position)")
        }
        func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }
        func readString() throws(ServiceError) -> String {
            // At the opening quote; `buffer` holds the unescaped bytes once an escape is met.
            position += 1
            let start = position
            var buffer: [UInt8]?
            while true {
                guard position < bytes.count else { throw fail("unterminated string") }
                let byte = bytes[position]
                if byte == UInt8(ascii: "\"") { break }
                if byte < 0x20 { throw fail("control character in a string") }
                guard byte == UInt8(ascii: "\\") else {
                    buffer?.append(byte)
                    position += 1
                    continue
                }
                if buffer == nil { buffer = Array(bytes[start..<position]) }
                guard position + 1 < bytes.count else { throw fail("unterminated escape") }
                let escaped = bytes[position + 1]
                position += 2
                let scalar: Unicode.Scalar
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = Unicode.Scalar(escaped)
                case UInt8(ascii: "b"): scalar = "\u{08}"
                case UInt8(ascii: "f"): scalar = "\u{0C}"
                case UInt8(ascii: "n"): scalar = "\n"
                case UInt8(ascii: "r"): scalar = "\r"
                case UInt8(ascii: "t"): scalar = "\t"
                case UInt8(ascii: "u"):
                    guard position + 4 <= bytes.count,
                          let value = UInt32(String(decoding: bytes[position..<(position + 4)], as: UTF8.self), radix: 16)
                    else { throw fail("bad \\u escape") }
                    position += 4
                    // Surrogates only matter here for comparing names: each becomes U+FFFD.
                    scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
                default:
                    throw fail("bad escape")
                }
                buffer?.append(contentsOf: Array(String(Character(scalar)).utf8))
            }
            let text = String(decoding: buffer ?? Array(bytes[start..<position]), as: UTF8.self)
            position += 1
            return text
        }
        func readNumber() throws(ServiceError) {
            let start = position
            if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
            func digits() -> Int {
                let from = position
                while position < bytes.count, (0x30...0x39).contains(bytes[position]) { position += 1 }
                return position - from
            }
            let integer = digits()
            guard integer > 0 else { throw fail("bad number") }
            if integer > 1, bytes[start + (bytes[start] == UInt8(ascii: "-") ? 1 : 0)] == 0x30 { throw fail("leading zero in a number") }
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard digits() > 0 else { throw fail("bad number") }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                guard digits() > 0 else { throw fail("bad number") }
            }
            let literal = String(decoding: bytes[start..<position], as: UTF8.self)
            if let value = Double(literal), !value.isFinite {
                throw .invalidJSON("\(path()): the number \(ServiceError.excerpt(literal)) is beyond the range of float64")
            }
        }
        func expect(_ word: String) throws(ServiceError) {
            let utf8 = Array(word.utf8)
            guard position + utf8.count <= bytes.count, Array(bytes[position..<(position + utf8.count)]) == utf8 else {
                throw fail("unexpected character")
            }
            position += utf8.count
        }

        /// Reads `"name" :` of the object on top of the stack, refusing a name it already has.
        func readMemberName() throws(ServiceError) {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let name = try readString()
            guard case .object(var names, _) = stack[stack.count - 1] else { return }
            stack[stack.count - 1] = .object(names: [], current: name)
            guard names.insert(name).inserted else {
                throw .invalidJSON("\(path()): duplicate member name (each name may appear once in an object)")
            }
            stack[stack.count - 1] = .object(names: names, current: name)
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            position += 1
        }

        /// After a complete value: moves to the next member or element, or closes containers.
        var expectingValue = true
        skipWhitespace()
        while true {
            if expectingValue {
                skipWhitespace()
                guard position < bytes.count else { throw fail("unexpected end of the body") }
                switch bytes[position] {
                case UInt8(ascii: "{"):
                    guard stack.count < maximumDepth else { throw fail("nesting deeper than \(maximumDepth)") }
                    position += 1
                    skipWhitespace()
                    if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                        position += 1
                        expectingValue = false
                    } else {
                        stack.append(.object(names: [], current: nil))
                        try readMemberName()
                        continue
                    }
                case UInt8(ascii: "["):
                    guard stack.count < maximumDepth else { throw fail("nesting deeper than \(maximumDepth)") }
                    position += 1
                    skipWhitespace()
                    if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                        position += 1
                        expectingValue = false
                    } else {
                        stack.append(.array(index: 0))
                        continue
                    }
                case UInt8(ascii: "\""):
                    _ = try readString()
                    expectingValue = false
                case UInt8(ascii: "t"): try expect("true"); expectingValue = false
                case UInt8(ascii: "f"): try expect("false"); expectingValue = false
                case UInt8(ascii: "n"): try expect("null"); expectingValue = false
                case UInt8(ascii: "-"), 0x30...0x39:
                    try readNumber()
                    expectingValue = false
                default:
                    throw fail("unexpected character")
                }
            }
            // A value is complete: continue its container, or finish.
            skipWhitespace()
            guard let top = stack.last else {
                guard position == bytes.count else { throw fail("content after the JSON value") }
                return
            }
            guard position < bytes.count else { throw fail("unexpected end of the body") }
            let byte = bytes[position]
            switch top {
            case .object:
                if byte == UInt8(ascii: ",") {
                    position += 1
                    try readMemberName()
                    expectingValue = true
                } else if byte == UInt8(ascii: "}") {
                    position += 1
                    stack.removeLast()
                    expectingValue = false
                } else {
                    throw fail("expected ',' or '}'")
                }
            case .array(let index):
                if byte == UInt8(ascii: ",") {
                    position += 1
                    stack[stack.count - 1] = .array(index: index + 1)
                    expectingValue = true
                } else if byte == UInt8(ascii: "]") {
                    position += 1
                    stack.removeLast()
                    expectingValue = false
                } else {
                    throw fail("expected ',' or ']'")
                }
            }
        }

    }
}

/// A JSON number that must be a whole number within `Int`: `2.5`, `2^64` and `1e309` are refused
/// with a message naming the field rather than Foundation's "not valid JSON".
struct WholeNumber: Decodable, Sendable {
    var value: Int

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let number: Double
        do {
            number = try container.decode(Double.self)
        } catch DecodingError.typeMismatch {
            throw DecodingError.typeMismatch(Int.self, DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "expected a whole number"))
        }
        guard number.rounded() == number else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "expected a whole number, found \(number)")
        }
        guard let whole = Int(exactly: number) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "\(number) is beyond the range of a 64-bit integer")
        }
        value = whole
    }
}
