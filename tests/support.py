"""Constants shared by several test modules."""

import datetime as dt

#: Fixed "today" for settings tests, so date checks don't depend on when the suite runs.
TODAY = dt.date(2026, 11, 23)
#: A private key of the right shape; never a real key.
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
