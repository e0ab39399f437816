import ArgumentParser
import DeskgateAPI

/// The `deskgate` command-line client: one subcommand per daemon operation.
@main
struct Deskgate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deskgate",
        abstract: "Talk to deskgated: inspect and operate desktop apps through the permission broker.",
        discussion: """
            The socket is --socket, else $DESKGATE_SOCKET, else $XDG_RUNTIME_DIR/deskgate/deskgate.sock. \
            The client options (--socket, --json) may stand before or after the subcommand: \
            deskgate --socket PATH apps is deskgate apps --socket PATH. Given on both sides, the one \
            after the subcommand wins. Commands that do not talk to the daemon ignore --socket.
            """,
        version: DeskgateAPI.versionText,
        subcommands: [
            Ping.self, Info.self, Whoami.self, Call.self, Methods.self,
            Apps.self, Tree.self, Find.self, Get.self, Read.self, Activate.self, Focus.self,
            SetText.self, Fill.self, FillSecret.self, SetValue.self, Select.self, Insert.self, ScrollTo.self, Wait.self, Navigate.self,
            Watch.self, Doctor.self,
        ] + ExtraCommands.all)

    /// Parsed here, so they may come before the subcommand as well as after it (see ``ClientOptions``).
    @OptionGroup(title: "Client options") var client: ClientOptions
}
