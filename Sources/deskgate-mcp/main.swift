print("deskgate-mcp: not built yet")
