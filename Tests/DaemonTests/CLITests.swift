#if canImport(Glibc)
import Glibc
#endif
import Foundation
import JSONRPC
import TestSupport
import Testing

/// The real `deskgate` binary, run as a person or a script would run it.
enum CLI {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
        var output: String { stdout + stderr }
    }

    /// An environment in which nothing but an explicit `--socket` can reach a daemon:
    /// `DESKGATE_SOCKET` and the XDG runtime socket both lead nowhere.
    static func isolatedEnvironment(_ directory: TempDirectory, extra: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DESKGATE_SOCKET"] = directory.file("no-daemon-here.sock")
        env["XDG_RUNTIME_DIR"] = directory.path
        for (key, value) in extra { env[key] = value }
        return env
    }

    /// Runs `executable` to completion (killed after `timeout`), stdout and stderr kept apart
    /// (through files, so long outputs such as completion scripts cannot fill a pipe).
    static func run(_ arguments: [String], executable: String = BuiltProducts.path("deskgate"),
                    environment: [String: String]? = nil, timeout: Double = 60) throws -> Result {
        let dir = TempDirectory("deskgate-cli-run")
        defer { dir.remove() }
        let outPath = dir.file("out"), errPath = dir.file("err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = FileHandle(forWritingAtPath: outPath)!, err = FileHandle(forWritingAtPath: errPath)!
        defer { try? out.close(); try? err.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw TestFailure("\(executable) \(arguments) did not finish within \(timeout) s")
        }
        return Result(status: process.terminationStatus,
                      stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "")
    }

    /// One command of `deskgate --experimental-dump-help`: its path and its long option names.
    struct Command {
        let path: [String]
        let longOptions: Set<String>
        let info: JSONValue
        var name: String { path.joined(separator: " ") }
    }

    /// Every command, from the definitions the binary parses with (the root first).
    static func commands() throws -> [Command] {
        let dump = try run(["--experimental-dump-help"])
        guard dump.status == 0, let root = try JSONParser.parse(dump.stdout)["command"] else {
            throw TestFailure("--experimental-dump-help failed: \(dump.output)")
        }
        var result: [Command] = []
        func walk(_ node: JSONValue, _ path: [String]) {
            var longs = Set<String>()
            for argument in node["arguments"]?.arrayValue ?? [] {
                for name in argument["names"]?.arrayValue ?? [] where name["kind"] == "long" {
                    if let n = name["name"]?.stringValue { longs.insert(n) }
                }
            }
            result.append(Command(path: path, longOptions: longs, info: node))
            for sub in node["subcommands"]?.arrayValue ?? [] {
                if let name = sub["commandName"]?.stringValue { walk(sub, path + [name]) }
            }
        }
        walk(root, [])
        return result
    }
}

@Suite("The deskgate CLI: global options, completions, man page, install", .serialized)
struct CLITests {
    /// One invocation per command that talks to the daemon, chosen so that each gets an answer
    /// from any daemon, with or without a desktop, and changes nothing a later one depends on.
    static let daemonInvocations: [String: [String]] = [
        "ping": ["ping"], "info": ["info"], "whoami": ["whoami"], "call": ["call", "daemon.ping"],
        "methods": ["methods"], "apps": ["apps"], "tree": ["tree", "no-such-app"],
        "find": ["find", "no-such-app"], "get": ["get", "r0"], "read": ["read", "r0"],
        "activate": ["activate", "r0"], "focus": ["focus", "r0"], "set": ["set", "r0", "x"],
        "fill": ["fill", "no-such-app", "Name", "x"], "set-value": ["set-value", "r0", "1"],
        "fill-secret": ["fill-secret", "no-such-app", "Password", "--label", "x"],
        "watch": ["watch", "no-such-event"],
        "select": ["select", "r0", "--index", "0"], "insert": ["insert", "r0", "x"], "scroll-to": ["scroll-to", "r0"],
        "wait": ["wait", "no-such-app", "--timeout-ms", "0"], "navigate": ["navigate", "no-such-app", "https://example.org"],
        "doctor": ["doctor", "--json"],
        "grants": ["grants"], "grants list": ["grants", "list"], "grants revoke": ["grants", "revoke", "g0"],
        "grants revoke-all": ["grants", "revoke-all"], "check": ["check", "daemon.ping"],
        "audit tail": ["audit", "tail"], "audit query": ["audit", "query"], "audit verify": ["audit", "verify"],
        // A pause denies what follows with -32001 (still the daemon's answer); resume finds no helper.
        "pause": ["pause", "cli test"], "halt": ["halt"], "resume": ["resume"],
    ]

    /// Whether a run got its answer from a daemon: success (no daemon but the one named by
    /// --socket is reachable), a JSON-RPC error from it, revoke's reply about an unknown id, or
    /// doctor's findings.
    static func reachedDaemon(_ r: CLI.Result) -> Bool {
        r.status == 0 || r.stderr.contains("(error -3") || r.output.contains("no remembered grant with id")
            // doctor exits 1 when a check failed (no desktop here): its findings came from the daemon.
            || r.stdout.contains("\"findings\"")
    }

    @Test("--socket before or after the subcommand reaches the daemon, for every command that talks to it")
    func socketEitherSide() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let dir = TempDirectory("deskgate-cli")
        defer { dir.remove() }
        let env = CLI.isolatedEnvironment(dir)
        let dead = dir.file("dead.sock")

        // Every command that declares --socket is in the table (a new one must be added).
        let declaring = Set(try CLI.commands().filter { !$0.path.isEmpty && $0.longOptions.contains("socket") }.map(\.name))
        let groupsWithDefault: Set<String> = ["grants"]
        #expect(declaring.union(groupsWithDefault) == Set(Self.daemonInvocations.keys))

        for (_, invocation) in Self.daemonInvocations.sorted(by: { $0.key < $1.key }) {
            let forms = [("before", ["--socket", daemon.socketPath] + invocation),
                         ("after", invocation + ["--socket", daemon.socketPath])]
            for (position, arguments) in forms {
                let r = try CLI.run(arguments, environment: env)
                #expect(Self.reachedDaemon(r), "deskgate \(arguments.joined(separator: " ")) [\(position)]: status \(r.status): \(r.output)")
            }
            // The option at that position is what routes the call: a dead path there fails to connect.
            for arguments in [["--socket", dead] + invocation, invocation + ["--socket", dead]] {
                let r = try CLI.run(arguments, environment: env)
                #expect(r.status == 1 && r.stderr.contains("cannot connect to \(dead)"),
                        "deskgate \(arguments.joined(separator: " ")): status \(r.status): \(r.output)")
            }
        }
    }

    @Test("given on both sides, the --socket after the subcommand wins; DESKGATE_SOCKET is the fallback")
    func socketPrecedence() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let dir = TempDirectory("deskgate-cli")
        defer { dir.remove() }
        let env = CLI.isolatedEnvironment(dir)
        let dead = dir.file("dead.sock")

        let afterLive = try CLI.run(["--socket", dead, "ping", "--socket", daemon.socketPath], environment: env)
        #expect(afterLive.status == 0 && afterLive.stdout == "pong\n", "\(afterLive.output)")
        let afterDead = try CLI.run(["--socket", daemon.socketPath, "ping", "--socket", dead], environment: env)
        #expect(afterDead.status == 1 && afterDead.stderr.contains("cannot connect to \(dead)"), "\(afterDead.output)")
        // Nested commands alike (the daemon answers grants.list, here with a denial: no policy allows it).
        let nestedLive = try CLI.run(["--socket", dead, "grants", "list", "--socket", daemon.socketPath], environment: env)
        #expect(Self.reachedDaemon(nestedLive), "\(nestedLive.output)")
        let nestedDead = try CLI.run(["--socket", daemon.socketPath, "grants", "list", "--socket", dead], environment: env)
        #expect(nestedDead.status == 1 && nestedDead.stderr.contains("cannot connect to \(dead)"), "\(nestedDead.output)")

        let viaEnvironment = try CLI.run(["ping"], environment: CLI.isolatedEnvironment(dir, extra: ["DESKGATE_SOCKET": daemon.socketPath]))
        #expect(viaEnvironment.status == 0 && viaEnvironment.stdout == "pong\n", "\(viaEnvironment.output)")
        let optionOverEnvironment = try CLI.run(["--socket", daemon.socketPath, "ping"], environment: env)
        #expect(optionOverEnvironment.status == 0, "\(optionOverEnvironment.output)")
        let environmentOnly = try CLI.run(["ping"], environment: env)
        #expect(environmentOnly.status == 1 && environmentOnly.stderr.contains("cannot connect to \(env["DESKGATE_SOCKET"]!)"),
                "\(environmentOnly.output)")
    }

    @Test("--json before or after the subcommand, also for the commands that never talk to the daemon")
    func jsonEitherSide() throws {
        let daemon = try DaemonProcess()
        defer { daemon.stop() }
        let dir = TempDirectory("deskgate-cli")
        defer { dir.remove() }
        let env = CLI.isolatedEnvironment(dir)

        for arguments in [["--json", "whoami", "--socket", daemon.socketPath], ["--socket", daemon.socketPath, "whoami", "--json"]] {
            let r = try CLI.run(arguments, environment: env)
            let who = try? JSONParser.parse(r.stdout)
            #expect(r.status == 0 && who?["exe"]?.stringValue == BuiltProducts.path("deskgate"), "\(arguments): \(r.output)")
        }

        let policy = dir.file("policy.toml")
        try "default = \"deny\"\n".write(toFile: policy, atomically: true, encoding: .utf8)
        for arguments in [["--json", "policy", "check", policy], ["policy", "check", "--json", policy], ["policy", "--json", "check", policy]] {
            let r = try CLI.run(arguments, environment: env)
            let result = try? JSONParser.parse(r.stdout)
            #expect(r.status == 0 && result?.arrayValue?.first?["ok"]?.boolValue == true, "\(arguments): \(r.output)")
        }
        // Without --json the same check prints its readable line.
        let readable = try CLI.run(["policy", "check", policy], environment: env)
        #expect(readable.status == 0 && readable.stdout.hasPrefix("\(policy): ok"), "\(readable.output)")
        // A stray option is still an error.
        let unknown = try CLI.run(["--sockets", daemon.socketPath, "ping"], environment: env)
        #expect(unknown.status == 64 && unknown.stderr.contains("Unknown option '--sockets'"), "\(unknown.output)")
    }

    @Test("completion scripts for bash, zsh and fish name every command and the client options")
    func completionScripts() throws {
        let commands = try CLI.commands()
        let names = Set(commands.compactMap(\.path.last))
        for shell in ["bash", "zsh", "fish"] {
            let r = try CLI.run(["--generate-completion-script", shell])
            #expect(r.status == 0 && !r.stdout.isEmpty, "\(shell): \(r.stderr)")
            for name in names.sorted() {
                #expect(r.stdout.contains(name), "\(shell) completion lacks \(name)")
            }
            // The root command offers the client options itself (they may come before the subcommand).
            let root = Self.rootCompletion(shell, r.stdout)
            for option in ["socket", "json"] {
                let offered = shell == "fish" ? root.contains("\"deskgate\" \(option)' -l '\(option)'") : root.contains("--\(option)")
                #expect(offered, "\(shell) completion does not offer --\(option) before the subcommand")
            }
        }
    }

    /// The part of a completion script that completes the root command's own words.
    static func rootCompletion(_ shell: String, _ script: String) -> String {
        if shell == "fish" { return script }  // fish scripts name the command path on each line
        guard let start = script.range(of: "\n_deskgate() {\n"),
              let end = script.range(of: "\n}\n", range: start.upperBound..<script.endIndex) else { return "" }
        return String(script[start.lowerBound..<end.upperBound])
    }

    /// What bash offers for `line` (cursor at its end), with the generated script loaded.
    static func bashCompletions(_ script: String, _ line: String) throws -> [String] {
        var words = line.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        if words.isEmpty { words = [""] }
        let quoted = words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let program = """
            source "\(script)"
            COMP_WORDS=(\(quoted)); COMP_CWORD=\(words.count - 1)
            COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
            _deskgate deskgate "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let r = try CLI.run(["--norc", "--noprofile", "-c", program], executable: "/bin/bash")
        guard r.status == 0 else { throw TestFailure("bash completion of '\(line)' failed: \(r.output)") }
        return r.stdout.split(separator: "\n").map { String($0).trimmingCharacters(in: .whitespaces) }
    }

    @Test("bash completes subcommands and their options, also after a global --socket")
    func bashCompletion() throws {
        let dir = TempDirectory("deskgate-cli")
        defer { dir.remove() }
        let script = dir.file("deskgate.bash")
        let generated = try CLI.run(["--generate-completion-script", "bash"])
        try generated.stdout.write(toFile: script, atomically: true, encoding: .utf8)

        let top = try Self.bashCompletions(script, "deskgate a")
        #expect(Set(top).isSuperset(of: ["apps", "activate", "audit"]), "\(top)")
        let afterSocket = try Self.bashCompletions(script, "deskgate --socket /tmp/x.sock au")
        #expect(afterSocket.contains("audit"), "\(afterSocket)")
        let nested = try Self.bashCompletions(script, "deskgate audit v")
        #expect(nested.contains("verify"), "\(nested)")
        let options = try Self.bashCompletions(script, "deskgate apps --")
        #expect(options.contains("--socket") && options.contains("--json"), "\(options)")
        let rootOptions = try Self.bashCompletions(script, "deskgate --")
        #expect(rootOptions.contains("--socket") && rootOptions.contains("--json"), "\(rootOptions)")
    }

    /// docs/deskgate.1 as committed.
    static var manPagePath: String { BuiltProducts.packageRoot + "/docs/deskgate.1" }

    @Test("docs/deskgate.1 is current: every command, option and help text of the binary is in it")
    func manPageCurrent() throws {
        let page = try String(contentsOfFile: Self.manPagePath, encoding: .utf8)
        for command in try CLI.commands() {
            if let name = command.path.last {
                #expect(page.contains(".It Em \(name)\n"), "man page lacks the command \(command.name)")
            }
            var texts: [String] = []
            if !command.path.isEmpty, let abstract = command.info["abstract"]?.stringValue { texts.append(abstract) }
            if let discussion = command.info["discussion"]?.stringValue { texts.append(discussion) }
            for argument in command.info["arguments"]?.arrayValue ?? [] {
                if let abstract = argument["abstract"]?.stringValue { texts.append(abstract) }
            }
            for text in texts {
                // generate-manual drops every non-ASCII character, so help texts must be ASCII.
                let ascii = text.unicodeScalars.allSatisfy { $0.isASCII }
                #expect(ascii, "\(command.name): help text is not ASCII: \(text)")
                #expect(page.contains(text), "man page of \(command.name) lacks: \(text) (run `make man`)")
            }
            for option in command.longOptions {
                // `.It Fl -json`, or after a short name: `.It Fl n , -lines`.
                #expect(page.contains("Fl -\(option)") || page.contains(" , -\(option)"), "man page of \(command.name) lacks --\(option)")
            }
        }
        // Sections beyond what the generator writes.
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "FILES", "\"EXIT STATUS\"", "EXAMPLES", "\"SEE ALSO\""] {
            #expect(page.contains("\n.Sh \(section)\n"), "man page lacks section \(section)")
        }
        #expect(page.contains("DESKGATE_SOCKET"))
    }

    @Test("man renders docs/deskgate.1 without warnings")
    func manPageRenders() throws {
        let page = try String(contentsOfFile: Self.manPagePath, encoding: .utf8)
        #expect(page.hasPrefix(".\\\" ") && page.contains("\n.Dt DESKGATE 1\n"))
        // man-db is not part of the build dependencies; where it is installed the page must render cleanly.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/man") else { return }
        var env = ProcessInfo.processInfo.environment
        env["MANWIDTH"] = "100"
        env["MAN_KEEP_FORMATTING"] = nil
        let r = try CLI.run(["--warnings", "-l", Self.manPagePath], executable: "/usr/bin/man", environment: env)
        #expect(r.status == 0 && r.stderr.isEmpty, "man -l: status \(r.status): \(r.stderr)")
        for text in ["DESKGATE(1)", "SYNOPSIS", "--socket", "DESKGATE_SOCKET", "EXIT STATUS", "audit"] {
            #expect(r.stdout.contains(text), "rendered page lacks \(text)")
        }
    }

    @Test("make install DESTDIR=… installs binaries, units, docs, completions and the man page without root; make uninstall removes them")
    func makeInstallUninstall() throws {
        let dir = TempDirectory("deskgate-install")
        defer { dir.remove() }
        let destdir = dir.file("root")
        try FileManager.default.createDirectory(atPath: destdir, withIntermediateDirectories: true)
        var source = BuiltProducts.packageRoot, binaries = BuiltProducts.directory
        // As an unprivileged user when the tests run as root: a staged install must not need root.
        var asUser: [String] = []
        if geteuid() == 0 {
            asUser = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            // That user may not reach the checkout (a 0700 parent, a umask 077 clone): it gets a
            // copy of what the install reads, the Makefile, systemd/, docs/ and the built binaries.
            source = dir.file("src")
            binaries = dir.file("bin")
            try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: binaries, withIntermediateDirectories: true)
            for item in ["Makefile", "systemd", "docs"] {
                try FileManager.default.copyItem(atPath: BuiltProducts.packageRoot + "/" + item, toPath: source + "/" + item)
            }
            for exe in ["deskgated", "deskgate", "deskgate-prompt", "deskgate-mcp"] {
                try FileManager.default.copyItem(atPath: BuiltProducts.path(exe), toPath: binaries + "/" + exe)
            }
            let readable = try CLI.run(["-R", "a+rX", source, binaries], executable: "/bin/chmod")
            #expect(readable.status == 0, "\(readable.output)")
            chmod(dir.path, 0o755)
            chown(destdir, 65534, 65534)
        }
        let make = asUser + ["/usr/bin/make", "--no-print-directory", "-C", source]
        let vars = ["DESTDIR=\(destdir)", "PREFIX=/usr/local", "INSTALL_FROM=\(binaries)"]
        var env = ProcessInfo.processInfo.environment
        env["HOME"] = dir.path
        env["MAKEFLAGS"] = nil

        let install = try CLI.run(Array(make.dropFirst()) + ["install"] + vars, executable: make[0], environment: env, timeout: 120)
        #expect(install.status == 0, "make install: \(install.output)")

        let prefix = destdir + "/usr/local"
        for exe in ["deskgated", "deskgate", "deskgate-prompt", "deskgate-mcp"] {
            #expect(FileManager.default.isExecutableFile(atPath: "\(prefix)/bin/\(exe)"), "bin/\(exe) not installed")
        }
        let service = (try? String(contentsOfFile: prefix + "/lib/systemd/user/deskgate.service", encoding: .utf8)) ?? ""
        #expect(service.contains("ExecStart=/usr/local/bin/deskgated"), "unit not installed with BINDIR: \(service)")
        #expect(FileManager.default.fileExists(atPath: prefix + "/lib/systemd/user/deskgate.socket"))
        for doc in ["architecture.md", "operations.md", "policy.md", "protocol.md", "security.md"] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/share/doc/deskgate/" + doc), "doc \(doc) not installed")
        }
        // The binaries' SHA-256 and provenance are recorded with the docs, and check out.
        let doc = prefix + "/share/doc/deskgate"
        let sums = (try? String(contentsOfFile: doc + "/SHA256SUMS", encoding: .utf8)) ?? ""
        #expect(sums.split(separator: "\n").count == 4, "SHA256SUMS: \(sums)")
        let check = try CLI.run(["-c", "cd '\(prefix)/bin' && sha256sum -c '\(doc)/SHA256SUMS'"], executable: "/bin/sh")
        #expect(check.status == 0 && check.stdout.components(separatedBy: ": OK").count == 5, "\(check.output)")
        let recorded = (try? String(contentsOfFile: doc + "/BUILD-INFO", encoding: .utf8)) ?? ""
        #expect(recorded == (try CLI.run(["--version"], executable: prefix + "/bin/deskgated").stdout), "BUILD-INFO: \(recorded)")
        let completions = [
            ("bash", "share/bash-completion/completions/deskgate"),
            ("zsh", "share/zsh/site-functions/_deskgate"),
            ("fish", "share/fish/vendor_completions.d/deskgate.fish"),
        ]
        for (shell, path) in completions {
            let installed = try? String(contentsOfFile: prefix + "/" + path, encoding: .utf8)
            let expected = try CLI.run(["--generate-completion-script", shell]).stdout
            #expect(installed == expected, "\(path): not the \(shell) completion script")
        }
        let man = FileManager.default.contents(atPath: prefix + "/share/man/man1/deskgate.1")
        #expect(man != nil && man == FileManager.default.contents(atPath: Self.manPagePath), "man page not installed")
        // Installed files are not writable by others.
        var st = stat()
        #expect(stat(prefix + "/share/man/man1/deskgate.1", &st) == 0 && st.st_mode & 0o777 == 0o644)
        // The files are the unprivileged user's: it, not root, ran the install.
        if !asUser.isEmpty { #expect(stat(prefix + "/bin/deskgate", &st) == 0 && st.st_uid == 65534) }

        let uninstall = try CLI.run(Array(make.dropFirst()) + ["uninstall"] + vars, executable: make[0], environment: env, timeout: 60)
        #expect(uninstall.status == 0, "make uninstall: \(uninstall.output)")
        var left: [String] = []
        if let walker = FileManager.default.enumerator(atPath: destdir) {
            for case let path as String in walker {
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: destdir + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    left.append(path)
                }
            }
        }
        #expect(left.isEmpty, "make uninstall left: \(left.sorted())")
    }
}
