"""`wordcrawl up`: the whole stack on one machine, without Docker.

stack.py starts and stops the pieces in the flow's order; services.py finds the Redis and
PostgreSQL to use (probes.py asks whether they answer) or starts its own (embedded.py, as
its own system user when run as root: postgres_user.py), with passwords kept in the state
folder (state_secrets.py).
"""
