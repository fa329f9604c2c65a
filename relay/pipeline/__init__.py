"""The pipeline of one source: the poller runs cycles on a schedule, the engine makes one
cycle (read pages, detect transitions, commit), and alerting turns a cycle into alerts.
"""
