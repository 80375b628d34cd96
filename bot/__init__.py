"""The Slack adapter (and the command line): thin code over ``sop_core``."""
