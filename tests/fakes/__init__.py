"""Small fakes the tests run against instead of mocks (a fake Telegram Bot API server)."""
