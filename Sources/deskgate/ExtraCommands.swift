import ArgumentParser

/// Command groups contributed by other modules (grants, policy, audit); registered here in one place.
enum ExtraCommands {
    static let all: [any ParsableCommand.Type] = []
}
