@testable import ATSPI
import Testing

/// How browser.navigate hands a URL to a browser: the rules, without a browser.
@Suite("Handing a URL to a running browser")
struct BrowserLaunchTests {
    @Test("Only absolute http and https URLs, without user info; the origin is scheme://host[:port]")
    func urls() throws {
        #expect(try BrowserLaunch.checked(url: "https://Example.ORG/path?q=1").origin == "https://example.org")
        #expect(try BrowserLaunch.checked(url: "http://127.0.0.1:8080/form.html").origin == "http://127.0.0.1:8080")
        #expect(try BrowserLaunch.checked(url: "https://example.org:443/").origin == "https://example.org")
        #expect(try BrowserLaunch.checked(url: "http://[::1]:3000/").origin == "http://[::1]:3000")
        for bad in ["file:///etc/passwd", "javascript:alert(1)", "data:text/html,hi", "example.org", "https://",
                    "https://user:pw@bank.example/", "https://bank.example@evil.example/", "https://a b/",
                    "https://host:99999/", "https://host:12ab/", "ftp://example.org/", "--remote-debugging-port=9222",
                    "https://example.org/\u{0}"] {
            #expect(throws: AccessibilityError.self, "\(bad)") { try BrowserLaunch.checked(url: bad) }
        }
        #expect(throws: AccessibilityError.self) { try BrowserLaunch.checked(url: "https://e.org/" + String(repeating: "a", count: 9000)) }
    }

    @Test("The browser's own profile switches are carried over, nothing else; --no-remote Firefox is refused")
    func arguments() throws {
        let chromium = try BrowserLaunch.arguments(
            kind: .chromium, executable: "/usr/lib/chromium/chromium",
            cmdline: ["/usr/lib/chromium/chromium", "--no-sandbox", "--force-renderer-accessibility", "--user-data-dir=/tmp/p",
                      "--remote-debugging-port=9222", "https://start.example/"],
            url: "https://example.org/")
        #expect(chromium == ["/usr/lib/chromium/chromium", "--no-sandbox", "--user-data-dir=/tmp/p", "https://example.org/"])
        // Chromium's command line as it shows it: its process title, one string.
        let titled = try BrowserLaunch.arguments(
            kind: .chromium, executable: "/usr/lib/chromium/chromium",
            cmdline: ["/usr/lib/chromium/chromium --enable-gpu-rasterization --no-sandbox --user-data-dir=/tmp/p --no-first-run http://a/"],
            url: "https://example.org/")
        #expect(titled == ["/usr/lib/chromium/chromium", "--no-sandbox", "--user-data-dir=/tmp/p", "https://example.org/"])
        let spaced = try BrowserLaunch.arguments(kind: .chromium, executable: "/c", cmdline: ["c", "--user-data-dir", "/d"],
                                                 url: "https://e.org/")
        #expect(spaced == ["/c", "--user-data-dir=/d", "https://e.org/"])
        let firefox = try BrowserLaunch.arguments(
            kind: .firefox, executable: "/usr/lib/firefox-esr/firefox-esr",
            cmdline: ["firefox-esr", "--profile", "/tmp/ff", "-marionette", "http://start/"], url: "https://example.org/")
        #expect(firefox == ["/usr/lib/firefox-esr/firefox-esr", "--profile", "/tmp/ff", "--new-tab", "https://example.org/"])
        #expect(throws: AccessibilityError.self) {
            try BrowserLaunch.arguments(kind: .firefox, executable: "/f", cmdline: ["firefox", "--no-remote"], url: "https://e.org/")
        }
    }

    @Test("Browsers are known by their executable's name; the environment keeps display, bus and profile only")
    func kindsAndEnvironment() {
        #expect(BrowserLaunch.kind(executable: "/usr/lib/firefox-esr/firefox-esr") == .firefox)
        #expect(BrowserLaunch.kind(executable: "/usr/lib/chromium/chromium") == .chromium)
        #expect(BrowserLaunch.kind(executable: "/opt/google/chrome/chrome") == .chromium)
        #expect(BrowserLaunch.kind(executable: "/usr/bin/python3") == nil)
        let env = BrowserLaunch.environment(from: ["DISPLAY=:0", "LD_PRELOAD=/tmp/evil.so", "HOME=/home/a",
                                                   "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1/bus", "SECRET_TOKEN=x"])
        #expect(env == ["DISPLAY=:0", "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1/bus", "HOME=/home/a", "PATH=/usr/bin:/bin"])
        // A browser whose environment block holds its process title (Chromium): the daemon's own.
        let overwritten = BrowserLaunch.environment(from: ["chromium --type=browser --no-sandbox"],
                                                    fallback: ["DISPLAY=:7", "HOME=/root", "LD_PRELOAD=/x.so"])
        #expect(overwritten == ["DISPLAY=:7", "HOME=/root", "PATH=/usr/bin:/bin"])
    }
}
