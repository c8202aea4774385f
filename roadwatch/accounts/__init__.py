"""People: command-centre staff, road chiefs' phone and broker accounts, registered
reporters (evaluators, covert checkers), API keys, password throttling."""
