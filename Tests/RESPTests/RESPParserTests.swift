import RESP
import Testing

@Suite("RESP encoding and parsing")
struct RESPParserTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("commands are arrays of binary-safe bulk strings")
    func encodesCommands() {
        #expect(RESPCommand.encode(["PING"]) == Self.bytes("*1\r\n$4\r\nPING\r\n"))
        #expect(RESPCommand.encode(["SET", "k", ""]) == Self.bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"))
        #expect(RESPCommand.encode([[0, 13, 10, 255]]) == Self.bytes("*1\r\n$4\r\n") + [0, 13, 10, 255] + Self.bytes("\r\n"))
        #expect(RESPCommand.encode([String]()) == Self.bytes("*0\r\n"))
    }

    static let valid: [(String, [UInt8], RESPValue)] = [
        ("simple string", bytes("+OK\r\n"), .simpleString("OK")),
        ("empty simple string", bytes("+\r\n"), .simpleString("")),
        ("error", bytes("-ERR unknown command\r\n"), .error("ERR unknown command")),
        ("integer", bytes(":42\r\n"), .integer(42)),
        ("negative integer", bytes(":-7\r\n"), .integer(-7)),
        ("largest integer", bytes(":9223372036854775807\r\n"), .integer(.max)),
        ("smallest integer", bytes(":-9223372036854775808\r\n"), .integer(.min)),
        ("bulk string", bytes("$5\r\nhello\r\n"), .bulkString(bytes("hello"))),
        ("empty bulk string", bytes("$0\r\n\r\n"), .bulkString([])),
        ("binary bulk string with CRLF inside", bytes("$4\r\n") + [13, 10, 0, 255] + bytes("\r\n"), .bulkString([13, 10, 0, 255])),
        ("null bulk string", bytes("$-1\r\n"), .null),
        ("null array", bytes("*-1\r\n"), .null),
        ("empty array", bytes("*0\r\n"), .array([])),
        ("nested array", bytes("*3\r\n:1\r\n*2\r\n+a\r\n$-1\r\n-E\r\n"),
         .array([.integer(1), .array([.simpleString("a"), .null]), .error("E")])),
    ]

    @Test("every RESP2 reply type parses and ends where it should", arguments: valid)
    func parsesValid(name: String, bytes: [UInt8], expected: RESPValue) throws {
        let parsed = try RESPParser().parse(bytes + Self.bytes("+next\r\n"))
        #expect(parsed?.value == expected, "\(name)")
        #expect(parsed?.end == bytes.count, "\(name)")
    }

    @Test("every proper prefix of a reply asks for more bytes", arguments: valid)
    func truncated(name: String, bytes: [UInt8], expected: RESPValue) throws {
        for length in 0..<bytes.count {
            #expect(try RESPParser().parse(Array(bytes[0..<length])) == nil, "\(name), first \(length) bytes")
        }
    }

    @Test("a reply is read from an offset")
    func offset() throws {
        let stream = Self.bytes("+OK\r\n:5\r\n")
        let first = try #require(try RESPParser().parse(stream))
        let second = try #require(try RESPParser().parse(stream, from: first.end))
        #expect(second.value == .integer(5) && second.end == stream.count)
    }

    static let malformed: [(String, [UInt8], RedisError.Malformation)] = [
        ("unknown type", bytes("!oops\r\n"), .unknownType(byte: UInt8(ascii: "!"), offset: 0)),
        ("RESP3 double", bytes(",1.5\r\n"), .unknownType(byte: UInt8(ascii: ","), offset: 0)),
        ("bare LF", bytes("+OK\n"), .missingTerminator(offset: 3)),
        ("CR without LF", bytes("+OK\rX"), .missingTerminator(offset: 3)),
        ("integer with letters", bytes(":12a\r\n"), .invalidInteger("12a", offset: 0)),
        ("empty integer", bytes(":\r\n"), .invalidInteger("", offset: 0)),
        ("integer overflow", bytes(":9223372036854775808\r\n"), .invalidInteger("9223372036854775808", offset: 0)),
        ("lone minus", bytes(":-\r\n"), .invalidInteger("-", offset: 0)),
        ("bulk length below -1", bytes("$-2\r\n"), .invalidLength("-2", offset: 0)),
        ("bulk length not a number", bytes("$x\r\n"), .invalidLength("x", offset: 0)),
        ("bulk without CRLF after the data", bytes("$2\r\nabXY"), .missingTerminator(offset: 6)),
        ("array length not a number", bytes("*two\r\n"), .invalidLength("two", offset: 0)),
        ("bad element inside an array", bytes("*2\r\n:1\r\n?\r\n"), .unknownType(byte: UInt8(ascii: "?"), offset: 8)),
    ]

    @Test("malformed replies throw the exact error", arguments: malformed)
    func rejectsMalformed(name: String, bytes: [UInt8], expected: RedisError.Malformation) {
        #expect(throws: RedisError.malformedReply(expected), "\(name)") { try RESPParser().parse(bytes) }
    }

    @Test("limits bound bulk strings, arrays, lines and nesting before anything is allocated")
    func limits() throws {
        let parser = RESPParser(limits: RESPParser.Limits(bulkBytes: 4, lineBytes: 10, arrayCount: 2, depth: 2))
        #expect(throws: RedisError.malformedReply(.bulkTooLarge(length: 1 << 30, limit: 4))) {
            try parser.parse(Self.bytes("$1073741824\r\n"))
        }
        #expect(throws: RedisError.malformedReply(.arrayTooLarge(count: 3, limit: 2))) { try parser.parse(Self.bytes("*3\r\n")) }
        #expect(throws: RedisError.malformedReply(.lineTooLong(limit: 10))) { try parser.parse(Self.bytes("+12345678901")) }
        #expect(throws: RedisError.malformedReply(.nestingTooDeep(limit: 2))) { try parser.parse(Self.bytes("*1\r\n*1\r\n*1\r\n")) }
        #expect(try parser.parse(Self.bytes("+1234567890\r\n"))?.value == .simpleString("1234567890"))
        #expect(try parser.parse(Self.bytes("*1\r\n*1\r\n:1\r\n"))?.value == .array([.array([.integer(1)])]))
    }

    @Test("random bytes never crash the parser", arguments: [UInt64(1), 2, 3])
    func fuzz(seed: UInt64) {
        var state = seed
        let alphabet = Self.bytes("+-:$*0123456789\r\n-ab")
        for _ in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<(Int(state % 24) + 1) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                bytes.append(alphabet[Int(state >> 33) % alphabet.count])
            }
            if let parsed = try? RESPParser().parse(bytes) { #expect(parsed.end <= bytes.count, "seed \(seed): \(bytes)") }
        }
    }
}
