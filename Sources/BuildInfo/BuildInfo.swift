/// Where this binary came from, recorded at build time by `BuildInfoPlugin`: the version, the
/// git commit and whether the tree had uncommitted changes, the compiler, when it was built, and
/// every dependency at the exact version built with (transitive ones included).
public struct BuildInfo: Sendable, Hashable {
    /// One package the build used.
    public struct Dependency: Sendable, Hashable {
        public let name: String
        /// `VERSION@REVISION` as SwiftPM resolved it (`local PATH` for a local package).
        public let version: String
        /// Its repository URL (or registry identity).
        public let source: String
    }

    /// deskgate's own version.
    public static let version = "0.1.0"
    /// The build of this binary.
    public static var current: BuildInfo { generated }

    public let commit: String
    /// Tracked files differed from `commit` when it was built.
    public let dirty: Bool
    /// `swiftc --version`'s first line.
    public let compiler: String
    /// RFC 3339 UTC; from `SOURCE_DATE_EPOCH` when the build set it (``builtAtSource``).
    public let builtAt: String
    /// `SOURCE_DATE_EPOCH` or `clock`.
    public let builtAtSource: String
    public let dependencies: [Dependency]

    /// One line for `--version`: `0.1.0 (commit abcdef123456, dirty)`.
    public var versionLine: String {
        "\(Self.version) (commit \(commit.prefix(12))\(dirty ? ", dirty" : ""))"
    }

    /// Several lines for people: the version line, compiler, time and dependencies.
    public var description: String {
        ([versionLine, "compiler: \(compiler)", "built: \(builtAt) (\(builtAtSource))", "dependencies:"]
            + dependencies.map { "  \($0.name) \($0.version) \($0.source)" }).joined(separator: "\n")
    }
}
