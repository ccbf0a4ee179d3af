// The data sets' IDX files are gzip streams; `Gzip` lives in its own module so the HTTP layer
// compresses answers with the same code without depending on Jigsaw.
@_exported import GzipCoding
