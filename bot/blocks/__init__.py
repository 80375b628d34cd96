"""Pure Block Kit builders: plain values in, ``slack_sdk.models`` blocks out."""
