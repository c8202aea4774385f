"""The demo city (issue 17): weeks of plausible history played through the real code paths
(`roadwatch demo seed`), and the people who live in it (`people`)."""
