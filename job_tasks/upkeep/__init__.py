"""The workers' own upkeep: who is alive, and the pages nobody is crawling any more.

heartbeat.py reports each worker to the census (census.py) in Redis; recovery.py, once a
period and by one worker, sends again the pages that reconcile.py finds lost (their worker
died, or their message is gone from the broker, which broker.py looks into).
"""
