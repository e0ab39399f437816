import ArgumentParser

/// Command groups for the broker and the audit log; registered here in one place.
enum ExtraCommands {
    static let all: [any ParsableCommand.Type] = [
        PolicyCommand.self, GrantsCommand.self, CheckCommand.self, AuditGroup.self,
        PauseCommand.self, ResumeCommand.self, HaltCommand.self,
    ]
}
