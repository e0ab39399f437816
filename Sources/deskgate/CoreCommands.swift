import ArgumentParser
import JSONRPC

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that the daemon answers.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await client.call("daemon.ping")
            client.emit(result) { $0.stringValue ?? "\($0)" }
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the daemon's version, uptime, clients and subsystem status.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await client.call("daemon.info")
            client.emit(result) { value in
                let state = value["broker"]?["pause"].map(PauseText.describe) ?? "-"
                return "state: \(state)\n" + Readable.keyValues(value)
            }
        }
    }
}

struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show how the daemon identifies this process.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await client.call("session.whoami")
            client.emit(result, readable: Readable.keyValues)
        }
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any method with JSON params and print the result.",
        discussion: "Example: deskgate call tree.snapshot '{\"app\":\"gedit\",\"format\":\"outline\"}'")
    @OptionGroup var client: ClientOptions
    @Argument(help: "Method name, e.g. daemon.info.") var method: String
    @Argument(help: "Params as a JSON object.") var params: String?

    func run() async throws {
        try await runReporting {
            var parsed: JSONValue? = nil
            if let params {
                do {
                    parsed = try JSONParser.parse(params)
                } catch {
                    throw CLIFailure(ValidationError("PARAMS is not valid JSON: \(error)"))
                }
            }
            let result = try await client.call(method, parsed)
            // `call` is for scripts: always JSON, except a plain string result prints as is.
            if !client.json, let text = result.stringValue { print(text) } else { print(JSONWriter.string(result)) }
        }
    }
}

struct Methods: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the daemon's methods (from rpc.discover).")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await runReporting {
            let result = try await client.call("rpc.discover")
            client.emit(result) { doc in
                (doc["methods"]?.arrayValue ?? []).map { m in
                    let name = m["name"]?.stringValue ?? "?"
                    let cls = m["x-deskgate-class"]?.stringValue.map { "[\($0)]" } ?? "[ungated]"
                    return "\(Readable.pad(name, 20)) \(Readable.pad(cls, 10)) \(m["summary"]?.stringValue ?? "")"
                }.joined(separator: "\n")
            }
        }
    }
}

/// Readable renderings of common result shapes.
enum Readable {
    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    static func keyValues(_ value: JSONValue) -> String {
        guard let object = value.objectValue else { return JSONWriter.string(value) }
        return object.map { member in
            let rendered: String = switch member.value {
            case .string(let s): s
            case .null: "-"
            default: JSONWriter.string(member.value)
            }
            return "\(member.key): \(rendered)"
        }.joined(separator: "\n")
    }
}
