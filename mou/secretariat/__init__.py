"""What the Secretariat does to a cycle: extend, excuse, resend, review, close, publish.

Each action is a plain function over a session that checks the actor's role, changes the
project database, queues its emails in the outbox and writes the audit log, all in the
caller's transaction. Each is idempotent: run again, it finds nothing to change and sends
nothing. The CLI and the dashboard both call them through ``mou.service.actions``.
"""
