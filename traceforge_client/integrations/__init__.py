"""Integrations that turn third-party SDK calls into TraceForge steps."""
