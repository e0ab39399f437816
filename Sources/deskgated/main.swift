print("deskgated")
