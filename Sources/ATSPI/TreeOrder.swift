/// Pure tree algorithms of snapshots: output order and the interactive filter. No I/O; tested
/// directly (TreeBuildTests).
enum TreeOrder {
    /// Nodes in depth-first order from the root, honouring max depth and the showing filter.
    static func depthFirst(_ tree: FetchedTree, maxDepth: Int?, showingOnly: Bool) -> [EmittedNode] {
        guard let rootSlot = tree.slot(of: tree.root) else { return [] }
        var output: [EmittedNode] = []
        output.reserveCapacity(tree.nodes.count)
        var visited = [Bool](repeating: false, count: tree.nodes.count)
        var stack: [(slot: Int, depth: Int, parent: Int?)] = [(rootSlot, 0, nil)]
        while let (slot, depth, parent) = stack.popLast() {
            guard !visited[slot] else { continue }
            visited[slot] = true
            let node = tree.nodes[slot]
            if showingOnly, depth > 0, !tree.isShown(node) { continue }
            let index = output.count
            output.append(EmittedNode(node: node, depth: depth, parentIndex: parent))
            if let maxDepth, depth >= maxDepth { continue }
            for child in node.children.reversed() {
                if let childSlot = tree.slot(of: child), !visited[childSlot] { stack.append((childSlot, depth + 1, index)) }
            }
        }
        return output
    }

    /// Keeps nodes that can be acted on (an action, or editable, focusable, selectable) and
    /// their ancestors.
    static func keepInteractive(_ nodes: [EmittedNode], _ extras: [NodeExtras]) -> ([EmittedNode], [NodeExtras]) {
        var keep = [Bool](repeating: false, count: nodes.count)
        for index in nodes.indices.reversed() {
            let node = nodes[index].node
            let interactive = !(extras[index].actions ?? []).isEmpty || node.states.isEditable
                || node.states.isFocusable || node.states.isSelectable
            if interactive || keep[index] {
                keep[index] = true
                if let parent = nodes[index].parentIndex { keep[parent] = true }
            }
        }
        var newIndex = [Int?](repeating: nil, count: nodes.count)
        var keptNodes: [EmittedNode] = []
        var keptExtras: [NodeExtras] = []
        for index in nodes.indices where keep[index] {
            newIndex[index] = keptNodes.count
            var item = nodes[index]
            item.parentIndex = item.parentIndex.flatMap { newIndex[$0] }
            keptNodes.append(item)
            keptExtras.append(extras[index])
        }
        return (keptNodes, keptExtras)
    }
}
