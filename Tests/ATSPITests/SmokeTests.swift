import ATSPI
import JSONRPC
import Testing

@Suite("AT-SPI smoke", .enabled(if: Desktop.enabled, Desktop.reason))
struct SmokeTests {
    @Test func listAndSnapshot() async throws {
        let service = try await Desktop.shared.get()
        let app = try await FixtureApp.launch("gtk3", service: service)
        let apps = try await service.listApps()
        print(apps.map { JSONWriter.string($0.json) })
        let snap = try await service.snapshot(app: app.name, format: .outline, include: [.actions])
        print(snap["outline"]?.stringValue ?? "")
        print(snap["stats"] ?? "")
    }
}
