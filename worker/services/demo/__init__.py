"""`checkin demo`: a small made-up clinic and its history."""
