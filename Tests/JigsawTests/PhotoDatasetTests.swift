import Foundation
import Jigsaw
import NeuralNet
import Testing
import TensorKit

@Suite struct PhotoDatasetTests {
    private func photos() -> PhotoCollection {
        let a = Image(tensor: smoothTestPicture(side: 120))
        var b = Image(width: 200, height: 150, channels: 3)
        for y in 0..<150 { for x in 0..<200 { for c in 0..<3 { b[x, y, c] = UInt8((x + 2 * y + 40 * c) % 256) } } }
        return PhotoCollection(images: [a, b], sources: ["a.png", "b.png"])
    }

    @Test func cropsAreDeterministicFromTheSeed() {
        let sampler = PhotoCropSampler(photos: photos(), side: 48, scales: 0.5...1.0)
        let first = sampler.batch(count: 6, seed: 11)
        #expect(first == sampler.batch(count: 6, seed: 11))
        #expect(first != sampler.batch(count: 6, seed: 12))
        #expect(first.count == 6 && first.channels == 3 && first.height == 48 && first.width == 48)
    }

    @Test func fullScaleUnflippedCropOfASquarePhotoIsTheResizedPhoto() {
        let collection = photos()
        let sampler = PhotoCropSampler(photos: collection, side: 60, scales: 1.0...1.0, flipProbability: 0)
        var generator = SeededGenerator(seed: 3)
        let crop = sampler.crop(photo: 0, generator: &generator)
        #expect(crop == collection.images[0].resized(width: 60, height: 60, filter: .area))
        let mirrored = PhotoCropSampler(photos: collection, side: 60, scales: 1.0...1.0, flipProbability: 1)
        var again = SeededGenerator(seed: 3)
        let flipped = mirrored.crop(photo: 0, generator: &again)
        #expect(flipped[0, 10, 1] == crop[59, 10, 1])
    }

    @Test func severalFixedCropsPerPhoto() {
        let crops = photos().testCrops(side: 40, perPhoto: 4)
        #expect(crops.count == 8 && crops.sources == ["a.png", "a.png", "a.png", "a.png", "b.png", "b.png", "b.png", "b.png"])
        #expect(crops == photos().testCrops(side: 40, perPhoto: 4))
        #expect(crops.image(at: 0) == photos().testCrops(side: 40).image(at: 0))
        #expect(crops.image(at: 5) != crops.image(at: 6))
    }

    @Test func testCropsAreCentred() {
        let crops = photos().testCrops(side: 50)
        #expect(crops.count == 2 && crops.sources == ["a.png", "b.png"])
        let expected = photos().images[1].centerCropped(width: 150, height: 150).resized(width: 50, height: 50, filter: .area)
        #expect(crops.image(at: 1) == expected)
    }

    @Test func loadsPNGJPEGAndWebPRecursively() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("photos-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let png = try PNG.encode(photos().images[1])
        try Data(png).write(to: directory.appendingPathComponent("sub/b.png"))
        let photo = photos().images[0]
        try Data(JPEG.encode(photo, quality: 95)).write(to: directory.appendingPathComponent("a.jpg"))
        try Data(WebP.encodeLossless(photo)).write(to: directory.appendingPathComponent("sub/c.webp"))
        try Data("not an image".utf8).write(to: directory.appendingPathComponent("notes.png"))
        let collection = try PhotoCollection.load(directory: directory.path)
        #expect(collection.sources == ["a.jpg", "sub/b.png", "sub/c.webp"])
        #expect(collection.images[1] == photos().images[1])
        // Lossless WebP is exact; JPEG at quality 95 is close.
        #expect(collection.images[2] == photo)
        let jpeg = collection.images[0]
        #expect(jpeg.width == photo.width && jpeg.height == photo.height && jpeg.channels == photo.channels)
        let difference = zip(jpeg.pixels, photo.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +)
        #expect(Double(difference) / Double(photo.pixels.count) < 6, "JPEG round trip mean error")
        #expect(collection.skipped == ["unknown": 1])
    }

    @Test func aDamagedPhotoNamesItsFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("photos-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).write(to: directory.appendingPathComponent("c.jpg"))
        let error = #expect(throws: DatasetError.self) { try PhotoCollection.load(directory: directory.path) }
        if case .decoding(let file, _)? = error {
            #expect(file.hasSuffix("c.jpg"))
        } else {
            Issue.record("unexpected \(String(describing: error))")
        }
    }

    /// The classic baseline on a folder of test photos: `PHOTO_DIR=/path/to/test swift test --filter
    /// ClassicBaselineOnPhotos`; prints one line per grid (optional `PHOTO_SCRAMBLES`, default 4;
    /// `PHOTO_SETTINGS` like `3x64,3x128`; `PHOTO_MEASURE=mgc` for Gallagher's measure; `PHOTO_CROPS` fixed crops per photo, default 1).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PHOTO_DIR"] != nil))
    func classicBaselineOnPhotos() throws {
        let environment = ProcessInfo.processInfo.environment
        let photos = try PhotoCollection.load(directory: environment["PHOTO_DIR"]!)
        let scrambles = Int(environment["PHOTO_SCRAMBLES"] ?? "") ?? 4
        let cropsPerPhoto = Int(environment["PHOTO_CROPS"] ?? "") ?? 1
        let measure: EdgeCompatibility.Measure = environment["PHOTO_MEASURE"] == "mgc" ? .mahalanobisGradient : .prediction()
        let settings = (environment["PHOTO_SETTINGS"] ?? "2x64,3x64,4x64,5x64,3x128").split(separator: ",")
        for setting in settings {
            let parts = setting.split(separator: "x").compactMap { Int($0) }
            let result = ClassicBaseline.evaluate(photos: photos, grid: parts[0], pieceSide: parts[1], scrambles: scrambles, seed: 2026,
                                                    measure: measure, cropsPerPhoto: cropsPerPhoto)
            let m = result.metrics
            let e = result.equalTerms
            print(String(format: "classic-baseline grid %d piece %d photos %d crops %d puzzles %d tau %.4f wrong %.4f any %.4f equal-terms %.4f / %.4f / %.4f grid-acc %.4f ms %.2f",
                         result.grid, result.pieceSide, result.photos, result.crops, result.puzzles, m.meanKendallTau,
                         m.meanProportionWrong, m.proportionAnyWrong, e.meanKendallTau, e.meanProportionWrong, e.proportionAnyWrong,
                         result.gridAccuracy, result.meanSolveMilliseconds))
        }
    }
}

@Suite struct PhotoAspectTests {
    /// A 300 × 100 photo in three vertical bands: red, green, blue.
    static let bands: Image = {
        var image = Image(width: 300, height: 100, channels: 3)
        for y in 0..<100 { for x in 0..<300 { image.pixels[(y * 300 + x) * 3 + x / 100] = 255 } }
        return image
    }()

    @Test("a test crop of aspect 3 takes the whole 3:1 photo squeezed into the square; aspect 1 its central square")
    func aspectTestCrops() {
        let photos = PhotoCollection(images: [Self.bands], sources: ["bands.png"])
        let square = photos.testCrops(side: 30, perPhoto: 1).image(at: 0)
        let wide = photos.testCrops(side: 30, perPhoto: 1, aspect: 3).image(at: 0)
        #expect(square[15, 15, 1] == 255 && square[1, 15, 0] == 0 && square[28, 15, 2] == 0)
        #expect(wide[2, 15, 0] == 255 && wide[15, 15, 1] == 255 && wide[27, 15, 2] == 255)
    }

    @Test("the sampler's crops stay within the aspect bound, some wider and some taller than square")
    func samplerAspects() {
        var photo = Image(width: 400, height: 400, channels: 3)
        for i in 0..<photo.pixels.count { photo.pixels[i] = UInt8(i % 251) }
        var sampler = PhotoCropSampler(photos: PhotoCollection(images: [photo], sources: ["p.png"]), side: 16)
        sampler.maximumAspect = 2
        var generator = SeededGenerator(seed: 3)
        var wider = 0, taller = 0
        for _ in 0..<200 {
            let placement = sampler.placement(photo: 0, generator: &generator)
            let ratio = Double(placement.width) / Double(placement.height)
            #expect(ratio >= 0.5 * 0.97 && ratio <= 2 * 1.03, "\(placement.width)×\(placement.height)")
            #expect(placement.x + placement.width <= 400 && placement.y + placement.height <= 400)
            if ratio > 1.2 { wider += 1 }
            if ratio < 1 / 1.2 { taller += 1 }
        }
        #expect(wider > 20 && taller > 20)
    }
}

@Suite struct JPEGAugmentationTests {
    @Test("re-encoding a scrambled puzzle as JPEG keeps it close, closer at higher quality, and leaves the other puzzles alone")
    func recompression() throws {
        let photos = PhotoCollection(images: [Image(tensor: smoothTestPicture(side: 48)), Image(tensor: smoothTestPicture(side: 48, phase: 1))],
                                     sources: ["a", "b"]).testCrops(side: 48)
        let normalization: (mean: [Float], std: [Float]) = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        func error(quality: Int) throws -> (first: Float, second: Float) {
            var batch = PuzzleBatch(batchSize: 2, grid: 3, channels: 3, height: 48, width: 48)
            var generator = SeededGenerator(seed: 1)
            batch.fill(from: photos, indices: 0..<2, generator: &generator, channelNormalization: normalization)
            let before = batch.scrambled.storage
            try batch.recompressScrambled(puzzle: 0, quality: quality, normalization: normalization)
            let after = batch.scrambled.storage
            let half = before.count / 2
            let first = zip(before[..<half], after[..<half]).map { abs($0 - $1) * 0.229 }.reduce(0, +) / Float(half)
            let second = zip(before[half...], after[half...]).map { abs($0 - $1) }.max() ?? 0
            return (first, second)
        }
        let fine = try error(quality: 95), coarse = try error(quality: 20)
        #expect(fine.first > 0 && fine.first < 0.01, "mean error \(fine.first) at quality 95")
        #expect(coarse.first > fine.first)
        #expect(fine.second == 0 && coarse.second == 0)
    }
}

@Suite struct PhotoTrainingTests {
    /// RGB photo crops, a fresh set every epoch: the images of epoch 2 differ from epoch 1's, and a
    /// run resumed mid-way through epoch 2 ends with the same weights as an uninterrupted one.
    @Test func freshCropsEveryEpochAndAnExactResume() throws {
        let a = Image(tensor: smoothTestPicture(side: 120))
        let sampler = PhotoCropSampler(photos: PhotoCollection(images: [a], sources: ["a.png"]), side: 24)
        var configuration = JigsawTrainingConfiguration(
            network: JigsawNetworkConfiguration(grid: 2, imageSize: 24, channels: 3, hiddenChannels: 4,
                                                normalisationMean: [0.485, 0.456, 0.406],
                                                normalisationStd: [0.229, 0.224, 0.225]),
            batchSize: 8, epochs: 3, seed: 5, threads: 1, validationSize: 0)
        configuration.permutationWeight = 1
        let epochImages: @Sendable (Int) -> ImageDataset = { sampler.batch(count: 16, seed: 100 + UInt64($0)) }
        let straight = try JigsawTrainer(configuration: configuration, training: epochImages(0), epochImages: epochImages)
        var seen: [ImageDataset] = []
        while !straight.isFinished {
            if straight.stepInEpoch == 0 { seen.append(straight.trainingImages) }
            _ = try straight.step()
        }
        #expect(seen.count == 3 && seen[1] == epochImages(1) && seen[1] != seen[0])

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("photos-\(UUID()).checkpoint").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try JigsawTrainer(configuration: configuration, training: epochImages(0), epochImages: epochImages)
        for _ in 0..<(first.stepsPerEpoch + 1) { _ = try first.step() }
        try first.saveCheckpoint(to: path)
        let second = try JigsawTrainer(configuration: configuration, training: epochImages(0), epochImages: epochImages)
        try second.resume(from: path)
        while !second.isFinished { _ = try second.step() }
        #expect(second.network.namedTensors() == straight.network.namedTensors())
    }
}
