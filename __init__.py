"""fastmcp-auth: a FastMCP server behind RS256 JWT bearer authentication, and its client.

The files are meant to be read (and copied) one at a time: see server.py and client.py.
"""
