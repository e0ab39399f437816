import Foundation
import PackagePlugin

/// Writes `BuildInfoGenerated.swift` into the `BuildInfo` target when the sources change: the git
/// commit and whether the tree was dirty, the compiler, the build time (`SOURCE_DATE_EPOCH` when
/// set) and every dependency, transitive ones included, at the exact version SwiftPM resolved.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfoGenerated.swift")
        let script = context.package.directoryURL.appending(path: "Plugins/BuildInfoPlugin/build-info.sh")
        var environment: [String: String] = [:]
        for key in ["PATH", "SOURCE_DATE_EPOCH", "HOME"] {
            if let value = ProcessInfo.processInfo.environment[key] { environment[key] = value }
        }
        // Run again whenever a source file, the manifest or git's idea of the tree changes (a
        // commit appends to logs/HEAD; staging rewrites the index): the record is then current
        // for every build whose inputs it describes.
        let root = context.package.directoryURL
        var inputs = context.package.targets.flatMap { target -> [URL] in
            (target as? SourceModuleTarget)?.sourceFiles.map(\.url) ?? []
        }
        inputs += [root.appending(path: "Package.swift"), script]
        for name in ["HEAD", "index", "logs/HEAD"] {
            let url = root.appending(path: ".git/" + name)
            if FileManager.default.fileExists(atPath: url.path()) { inputs.append(url) }
        }
        return [.buildCommand(
            displayName: "Recording build provenance",
            executable: URL(filePath: "/bin/sh"),
            arguments: [script.path(), root.path(), output.path()] + Self.dependencies(of: context.package),
            environment: environment,
            inputFiles: inputs,
            outputFiles: [output])]
    }

    /// `identity=version@revision url` for each package the root depends on, directly or not,
    /// sorted by identity.
    static func dependencies(of root: Package) -> [String] {
        var seen: [String: String] = [:]
        var queue = root.dependencies.map(\.package)
        while let package = queue.popLast() {
            guard seen[package.id] == nil else { continue }
            switch package.origin {
            case .repository(let url, let version, let revision):
                // A mirror may give no revision ("no revision"): the version alone then.
                let pinned = revision.count == 40 && revision.allSatisfy(\.isHexDigit) ? "\(version)@\(revision)" : version
                seen[package.id] = "\(package.id)=\(pinned) \(url)"
            case .registry(let identity, let version):
                seen[package.id] = "\(package.id)=\(version) registry:\(identity)"
            case .local(let path):
                seen[package.id] = "\(package.id)=local \(path)"
            case .root:
                continue
            @unknown default:
                seen[package.id] = "\(package.id)=unknown"
            }
            queue += package.dependencies.map(\.package)
        }
        return seen.keys.sorted().compactMap { seen[$0] }
    }
}
