"""People: command-centre staff, road chiefs' phone and broker accounts, registered reporters, password throttling."""
