import DeskgateAPI
import DeskgateClient
import Foundation
import JSONRPC
import Testing
import TestSupport

/// Where a binary came from, as each executable and `daemon.info` report it, checked against the
/// checkout and SwiftPM's own record of what it resolved.
@Suite("Provenance: --version and daemon.info.build")
struct ProvenanceTests {
    static let root = BuiltProducts.packageRoot

    static func git(_ arguments: [String]) throws -> String {
        let result = try CLI.run(["-C", root] + arguments, executable: "/usr/bin/git")
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `identity: version` of every pin in Package.resolved (written by the build).
    static func resolvedPins() throws -> [String: String] {
        let text = try String(contentsOfFile: root + "/Package.resolved", encoding: .utf8)
        let pins = try JSONParser.parse(text)["pins"]?.arrayValue ?? []
        return Dictionary(uniqueKeysWithValues: pins.compactMap { pin in
            guard let id = pin["identity"]?.stringValue, let version = pin["state"]?["version"]?.stringValue else { return nil }
            return (id, version)
        })
    }

    @Test("every executable's --version names the commit it was built from, the compiler, the build time and every resolved dependency")
    func versionLines() throws {
        let head = try Self.git(["rev-parse", "HEAD"])
        try #require(head.count == 40, "not a git checkout: \(head)")
        let pins = try Self.resolvedPins()
        #expect(pins["swift-nio"] != nil && pins["swift-collections"] != nil, "\(pins)")
        for executable in ["deskgate", "deskgated", "deskgate-prompt", "deskgate-mcp"] {
            let result = try CLI.run(["--version"], executable: BuiltProducts.path(executable))
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(result.status == 0)
            #expect(lines.first?.hasPrefix("\(DeskgateAPI.version) (commit \(head.prefix(12))") == true, "\(executable): \(lines.first ?? "")")
            #expect(lines.contains { $0.hasPrefix("compiler: Swift version ") }, "\(executable): \(result.stdout)")
            #expect(lines.contains { $0.hasPrefix("built: ") }, "\(executable): \(result.stdout)")
            // Transitive packages too, each at the version SwiftPM resolved.
            for (name, version) in pins {
                #expect(lines.contains { $0.hasPrefix("  \(name) \(version)") }, "\(executable) lacks \(name) \(version)")
            }
        }
        // A tree with no changes to tracked files now was clean when it was built, or was rebuilt
        // since (a commit or an edit of a source file runs the record again).
        if try Self.git(["status", "--porcelain", "--untracked-files=no"]).isEmpty {
            #expect(DeskgateAPI.buildJSON["dirty"] == false)
        }
    }

    @Test("daemon.info.build says the same as the daemon binary's --version")
    func daemonInfo() async throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let client = try await daemon.client()
        defer { client.closeNow() }
        let build = try #require(try await client.call("daemon.info")["build"])
        let head = try Self.git(["rev-parse", "HEAD"])
        #expect(build["commit"]?.stringValue == head)
        #expect(build["version"]?.stringValue == DeskgateAPI.version)
        #expect(build["dirty"]?.boolValue != nil)
        #expect(build["compiler"]?.stringValue?.hasPrefix("Swift version ") == true)
        let versions = Dictionary(uniqueKeysWithValues: (build["dependencies"]?.arrayValue ?? []).compactMap { dep in
            dep["name"]?.stringValue.map { ($0, dep["version"]?.stringValue ?? "") }
        })
        #expect(versions == (try Self.resolvedPins()), "\(versions)")
        let text = try CLI.run(["--version"], executable: BuiltProducts.path("deskgated")).stdout
        #expect(text.contains("built: \(build["built_at"]?.stringValue ?? "?")"), "\(text)")
    }
}
