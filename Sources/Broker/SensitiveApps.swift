/// Apps deskgate never reads, acts on or lists, whatever the policy says: password managers,
/// credential, polkit and keyring prompts, lock screens and screensavers.
///
/// Each entry is matched against both the app's name (chosen by the app) and its verified
/// executable, so an app cannot escape the list by renaming itself.
public enum SensitiveApps {
    /// Built-in name globs.
    public static let namePatterns: [String] = [
        "[Kk]ee[Pp]ass*", "KeePassX*", "Bitwarden*", "bitwarden*", "1Password*", "1password*",
        "Seahorse", "seahorse", "Passwords and Keys", "gcr-prompter", "gcr-viewer*", "gnome-keyring*",
        "*polkit*", "*Polkit*", "*PolicyKit*", "*pinentry*", "ssh-askpass*", "*kwallet*", "KWallet*",
        "*screensaver*", "*ScreenSaver*", "*Screensaver*", "light-locker", "*xsecurelock*", "i3lock*", "swaylock*",
        "xlock*", "slock", "gnome-screensaver*", "*lockscreen*", "*LockScreen*", "kscreenlocker*",
    ]
    /// Built-in executable globs.
    public static let exePatterns: [String] = [
        "*/keepassxc*", "*/keepass*", "*/KeePass*", "*/bitwarden*", "*/Bitwarden*", "*/1password*", "*/1Password*",
        "*/seahorse", "*/gcr-prompter", "*/gcr4-prompter", "*/gcr-viewer*", "*/gnome-keyring*",
        "*polkit*", "*/pinentry*", "*/ssh-askpass*", "*/ksshaskpass", "*/kwalletd*", "*/ksecretd",
        "*screensaver*", "*/light-locker", "*/xsecurelock", "*/i3lock*", "*/swaylock*", "*/xlock*", "*/slock",
        "*/kscreenlocker*", "*/mate-screensaver*", "*/xfce4-screensaver*", "*/cinnamon-screensaver*",
    ]

    static let builtInNames: [Glob] = namePatterns.map { try! Glob($0) }
    static let builtInExes: [Glob] = exePatterns.map { try! Glob($0) }
}

/// Matches targets against the built-in sensitive list plus the policy files' `sensitive_apps`.
struct SensitiveMatcher: Sendable {
    var extra: [Glob] = []

    func isSensitive(_ target: TargetInfo?) -> Bool {
        guard let target else { return false }
        if let name = target.appName {
            if SensitiveApps.builtInNames.contains(where: { $0.matches(name) }) { return true }
            if extra.contains(where: { $0.matches(name) }) { return true }
        }
        if let exe = target.appExe {
            if SensitiveApps.builtInExes.contains(where: { $0.matches(exe) }) { return true }
            if extra.contains(where: { $0.matches(exe) }) { return true }
        }
        return false
    }
}
