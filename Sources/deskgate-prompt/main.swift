print("deskgate-prompt: not built yet")
