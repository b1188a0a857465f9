"""``wxsub``: the operator's command line for a wxsub stack, local or deployed."""
