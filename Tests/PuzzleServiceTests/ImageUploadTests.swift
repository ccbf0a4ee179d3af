import Foundation
import HTTPCore
import Jigsaw
import PuzzleService
import TensorKit
import Testing

@Suite("Uploads in JPEG and WebP")
struct ImageUploadTests {
    static let truth = [2, 0, 3, 1]
    static let puzzle = scrambledImage(grid: 2, permutation: truth, width: 28, height: 28)

    @Test("a JPEG, a WebP and a JPEG sent as PNG or octet-stream are solved", arguments: [
        ("image/jpeg", false), ("image/webp", true), ("image/png", false), ("application/octet-stream", false), ("image/jpg", false),
    ])
    func solvesUploads(contentType: String, webp: Bool) throws {
        let body = webp ? try WebP.encodeLossless(Self.puzzle) : try JPEG.encode(Self.puzzle, quality: 95)
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": contentType], body: body)
            #expect(reply.status == 200, "\(contentType): \(reply.text)")
            #expect(reply.json["permutation"] as? [Int] == Self.truth, "\(contentType)")
        }
    }

    @Test("a JPEG in a JSON body's image field is solved")
    func solvesBase64JPEG() throws {
        let jpeg = try JPEG.encode(Self.puzzle, quality: 95)
        let body = Array(#"{"image": "data:image/jpeg;base64,\#(Data(jpeg).base64EncodedString())"}"#.utf8)
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "application/json"], body: body)
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["permutation"] as? [Int] == Self.truth)
        }
    }

    @Test("a JPEG digit is solved by the shipped model", .enabled(if: FileManager.default.fileExists(atPath: Fixtures.trainedModel)))
    func shippedModelSolvesJPEG() throws {
        let digits = try ImageDataset.mnist(imagesFile: Fixtures.mnistImages, labelsFile: Fixtures.mnistLabels, limit: 20)
        let model = try ServiceModel(contentsOfFile: Fixtures.trainedModel)
        try withService(models: [model]) { port, _ in
            var correct = 0, pieces = 0
            for index in 0..<digits.count {
                var generator = SeededGenerator(seed: UInt64(index))
                let truth = generator.permutation(4)
                let cells = digits.image(at: index).cellsForTest(grid: 2)
                let jpeg = try JPEG.encode(tile(truth.map { cells[$0] }, grid: 2), quality: 95)
                let reply = try request("POST", "/v1/solve", port: port, headers: ["Content-Type": "image/jpeg"], body: jpeg)
                #expect(reply.status == 200, "\(reply.text)")
                let permutation = reply.json["permutation"] as? [Int] ?? []
                correct += zip(permutation, truth).filter { $0 == $1 }.count
                pieces += truth.count
            }
            #expect(Double(correct) / Double(pieces) > 0.9, "\(correct) of \(pieces) pieces right")
        }
    }

    @Test("a 12-MP JPEG is scrambled from its half-scale decode")
    func scramblesPhoto() throws {
        var photo = Image(width: 4032, height: 3024, channels: 3)
        for i in stride(from: 0, to: photo.pixels.count, by: 3) { photo.pixels[i] = UInt8(truncatingIfNeeded: i / 7919) }
        let jpeg = try JPEG.encode(photo, quality: 80)
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", "/v1/scramble?grid=3&seed=4", port: port, headers: ["Content-Type": "image/jpeg"], body: jpeg)
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["width"] as? Int == 2016 && reply.json["height"] as? Int == 1512, "\(reply.json["width"] ?? "?")")
        }
    }

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var target = "/v1/solve"
        var contentType: String
        var body: [UInt8]
        var status: Int
        var code: String
        var message: String
        var testDescription: String { name }
    }

    static let cases: [Case] = {
        let jpeg = (try? JPEG.encode(puzzle, quality: 90)) ?? []
        var liar = jpeg
        // SOF0 of TurboJPEG's output follows SOI, APP0 and the quantisation table(s).
        if let sof = (2..<(jpeg.count - 9)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }) {
            liar[sof + 5] = 0xEA; liar[sof + 6] = 0x60; liar[sof + 7] = 0xEA; liar[sof + 8] = 0x60   // 60000 × 60000
        }
        let gif = Array("GIF89a".utf8) + [1, 0, 1, 0, 0, 0, 0, 0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B]
        let animatedWebP = Array("RIFF".utf8) + [22, 0, 0, 0] + Array("WEBPVP8X".utf8) + [10, 0, 0, 0, 0x02, 0, 0, 0, 63, 0, 0, 63, 0, 0]
        return [
            Case(name: "GIF as image/gif", contentType: "image/gif", body: gif, status: 415, code: "unsupported_image_format",
                 message: "unsupported format: GIF; send PNG, JPEG or WebP"),
            Case(name: "GIF as octet-stream", contentType: "application/octet-stream", body: gif, status: 415,
                 code: "unsupported_image_format", message: "unsupported format: GIF; send PNG, JPEG or WebP"),
            Case(name: "GIF to scramble", target: "/v1/scramble", contentType: "image/gif", body: gif, status: 415,
                 code: "unsupported_image_format", message: "unsupported format: GIF; send PNG, JPEG or WebP"),
            Case(name: "JPEG claiming 60000 × 60000", contentType: "image/jpeg", body: liar, status: 413, code: "image_too_large",
                 message: "image of 7500×7500×1 samples exceeds the limit of 16777216 samples"),
            Case(name: "truncated JPEG", contentType: "image/jpeg", body: Array(jpeg.prefix(jpeg.count / 2)), status: 400,
                 code: "invalid_image", message: "the JPEG data is truncated"),
            Case(name: "animated WebP", contentType: "image/webp", body: animatedWebP, status: 422, code: "unprocessable_input",
                 message: "animated WebP images are not supported; send a still image"),
            Case(name: "garbage as image/jpeg", contentType: "image/jpeg", body: Array("not an image at all".utf8), status: 400,
                 code: "invalid_image", message: "the data is not a PNG, JPEG or WebP image"),
            Case(name: "garbage as octet-stream", contentType: "application/octet-stream", body: Array("not an image".utf8),
                 status: 415, code: "unsupported_media_type",
                 message: "content type 'application/octet-stream' is not supported; send one of image/png, image/jpeg, image/webp, application/json"),
        ]
    }()

    @Test("refused uploads get their status, code and message", arguments: cases)
    func refusals(_ testCase: Case) throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let reply = try request("POST", testCase.target, port: port, headers: ["Content-Type": testCase.contentType], body: testCase.body)
            #expect(reply.status == testCase.status, "\(testCase.name): \(reply.text)")
            #expect(reply.errorCode == testCase.code, "\(testCase.name): \(reply.text)")
            #expect((reply.json["error"] as? [String: Any])?["message"] as? String == testCase.message, "\(testCase.name): \(reply.text)")
        }
    }

    @Test("the OpenAPI document lists the image media types")
    func openAPI() throws {
        try withService(models: [try intensityModel(grid: 2)]) { port, _ in
            let text = try get("/openapi.json", port: port).text
            #expect(text.contains("image/jpeg") && text.contains("image/webp"))
        }
    }
}
