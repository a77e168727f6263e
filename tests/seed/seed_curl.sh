# The seed spec's curl (Linux) example (docs "API Usage Guide" → "Using curl (Linux)"), copied
# verbatim. tests/test_seed_clients.py puts the URL and a real token into a temporary copy.
curl -X POST -H "Content-Type: application/json" -H "Authorization: Bearer YOUR_AUTH_TOKEN" -d '{
    "messages": [
        { "role": "user", "content": "請自我介紹" }
    ],
    "model": "gemini-pro"
}' http://127.0.0.1/v1.0/chat/completions
