// swift-tools-version: 6.2
import PackageDescription

/// Upcoming features every target opts into (see docs/architecture.md, "Style").
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InferIsolatedConformances"),
]

let package = Package(
    name: "deskgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "deskgated", targets: ["deskgated"]),
        .executable(name: "deskgate", targets: ["deskgate"]),
        .executable(name: "deskgate-prompt", targets: ["deskgate-prompt"]),
        .executable(name: "deskgate-mcp", targets: ["deskgate-mcp"]),
    ],
    dependencies: [
        // Exact versions: a build is reproducible from the commit alone (Package.resolved stays out
        // of git; the versions of transitive packages are recorded in each binary: BuildInfo).
        .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
        .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", exact: "4.5.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", exact: "0.12.1"),
    ],
    targets: [
        // C shims. libdbus and libsystemd through pkg-config; the AT-SPI constants header only
        // (libatspi is never linked: it is not thread-safe and blocks for 15 s on a frozen app).
        .systemLibrary(name: "CDBus", pkgConfig: "dbus-1", providers: [.apt(["libdbus-1-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CAtspiConstants"),
        // Linux syscalls Swift cannot call directly (pidfd_open, SO_PEERPIDFD, prctl).
        .target(name: "CLinux"),

        // Provenance of the binary (commit, dirty, compiler, build time, exact dependencies),
        // generated before every build by BuildInfoPlugin.
        .plugin(name: "BuildInfoPlugin", capability: .buildTool()),
        .target(name: "BuildInfo", plugins: ["BuildInfoPlugin"]),
        // Pure protocol: JSON values, JSON-RPC envelopes, framing, error codes. No I/O.
        .target(name: "JSONRPC", swiftSettings: strictSettings),
        // Every deskgate method: name, params schema, risk class. One source of truth for the
        // dispatcher, rpc.discover, the CLI and deskgate-mcp.
        .target(name: "DeskgateAPI", dependencies: ["JSONRPC", "BuildInfo"], swiftSettings: strictSettings),
        // Permission broker: policy files, grants, decisions, prompts. Pure logic.
        .target(
            name: "Broker",
            dependencies: [
                "JSONRPC", "DeskgateAPI",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        // Hash-chained audit log.
        .target(
            name: "Audit",
            dependencies: [
                "JSONRPC", "CSystemd", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        // Test helper: appends audit records until killed (crash-injection tests in AuditTests).
        .executableTarget(
            name: "audit-crash-writer",
            dependencies: ["Audit", "JSONRPC", .product(name: "Logging", package: "swift-log")],
            path: "Tests/AuditCrashWriter",
            swiftSettings: strictSettings),
        // libdbus wrapper: connections, marshalling, async calls with timeouts.
        .target(name: "DBus", dependencies: ["CDBus"], swiftSettings: strictSettings),
        // AT-SPI over D-Bus: apps, snapshots, actions, events.
        .target(
            name: "ATSPI",
            dependencies: ["DBus", "CAtspiConstants", "CLinux", "JSONRPC", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        // The desktop's Secret Service (org.freedesktop.secrets) over D-Bus, for field.fill_secret.
        .target(name: "SecretService", dependencies: ["DBus"], swiftSettings: strictSettings),
        // Wiring: socket server, peer identity, method handlers.
        .target(
            name: "Daemon",
            dependencies: [
                "JSONRPC", "DeskgateAPI", "Broker", "Audit", "ATSPI", "SecretService", "CSystemd", "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        // Client library used by the CLI, the prompt helper, deskgate-mcp, tests and benchmarks.
        .target(
            name: "DeskgateClient",
            dependencies: ["JSONRPC", "DeskgateAPI", "CLinux"],
            swiftSettings: strictSettings),

        .executableTarget(
            name: "deskgated",
            dependencies: [
                "Daemon", "ATSPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(
            name: "deskgate",
            dependencies: [
                "DeskgateClient", "DeskgateAPI", "JSONRPC", "Broker", "Audit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(
            name: "deskgate-prompt",
            dependencies: [
                // DBus: the desktop notification with the Pause button (org.freedesktop.Notifications).
                "DeskgateClient", "DeskgateAPI", "JSONRPC", "DBus",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings),
        .executableTarget(
            name: "deskgate-mcp",
            dependencies: [
                "DeskgateClient", "DeskgateAPI", "JSONRPC",
                .product(name: "MCP", package: "swift-sdk"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),

        // Helpers shared by test targets: spawning the daemon, raw socket clients, temp dirs.
        .target(
            name: "TestSupport",
            dependencies: ["JSONRPC", "DeskgateClient", "DeskgateAPI", "CLinux"],
            path: "Tests/TestSupport",
            swiftSettings: strictSettings),
        // Benchmarks behind `make bench` (see docs/benchmarks.md).
        .executableTarget(
            name: "deskgate-bench",
            dependencies: [
                "JSONRPC", "DeskgateAPI", "Broker", "Audit", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings),
        .testTarget(name: "JSONRPCTests", dependencies: ["JSONRPC", "DeskgateAPI"], swiftSettings: strictSettings),
        .testTarget(
            name: "BrokerTests",
            dependencies: ["Broker", "JSONRPC", "DeskgateAPI", "CLinux", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings),
        .testTarget(
            name: "AuditTests",
            dependencies: [
                "Audit", "JSONRPC", "CSystemd", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strictSettings),
        .testTarget(
            name: "DaemonTests",
            dependencies: ["Daemon", "DeskgateClient", "JSONRPC", "DeskgateAPI", "TestSupport", "CLinux"],
            swiftSettings: strictSettings),
        // Pure-logic tests of deskgate-mcp (its end-to-end tests are Python: Tests/MCPTests/run.sh).
        .testTarget(
            name: "MCPBridgeTests",
            dependencies: ["deskgate-mcp", "JSONRPC", "DeskgateAPI", .product(name: "MCP", package: "swift-sdk")],
            path: "Tests/MCPTests/Swift",
            swiftSettings: strictSettings),
        .testTarget(
            name: "ATSPITests",
            dependencies: ["ATSPI", "Daemon", "DBus", "DeskgateClient", "JSONRPC", "TestSupport"],
            swiftSettings: strictSettings),
    ]
)
