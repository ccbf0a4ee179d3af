/// The release of the package; every executable answers `--version` with it.
public enum PackageVersion {
    public static let string = "0.1.0"
}
