"""The notifications context publishes no events: sending a message is not a business fact others react to."""
