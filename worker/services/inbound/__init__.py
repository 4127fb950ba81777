"""A text coming in: receive and process a reply; check-in answers by SMS or by a signed email link."""
