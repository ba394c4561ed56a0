"""The contract between TraceForge clients and the daemon, shared by both sides.

Everything a client needs to agree on with the daemon lives here and nowhere else:

- ``wire``: the socket protocol's messages, framing, limits and error codes;
- ``ids``: what run and step ids look like;
- ``home``: where a daemon keeps its socket, database and token, and ``daemon.json``,
  the file through which clients and tools find a running daemon;
- ``conventions``: run metadata keys with a meaning (the link from a replay to its
  original);
- ``version``: the distribution's version, which both ends send in the hello.

``protocol.md`` at the top of the repository is the same contract in prose, for clients
in other languages. Importing this package has no side effects and pulls in nothing but
msgspec, so the daemon and its reader processes can use it without loading the client.
"""
