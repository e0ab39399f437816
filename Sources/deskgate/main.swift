print("deskgate")
