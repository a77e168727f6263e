# ruff: noqa
# fmt: off
# The seed spec's Python client (docs "API Usage Guide" → "Using Python"), copied verbatim.
# tests/test_seed_clients.py puts the URL and a real token into a temporary copy.
import requests, json

# Define the API endpoint and authentication headers.
api_url = 'http://127.0.0.1/v1.0/chat/completions'
headers = {
    'Content-Type': 'application/json',
    'Authorization': 'Bearer YOUR_AUTH_TOKEN'
}

# Define the request payload as a dictionary for single round chatting.
request_data = {
    "messages": [
        { "role": "user", "content": "請自我介紹" }
    ],
    "model": "gemini-pro"
}

# Perform the HTTP request using the requests library.
with requests.post(api_url, headers=headers, json=request_data, stream=True,timeout=60) as response:
    for line in response.iter_lines(decode_unicode=True):
        if line:
            if line == "event: close":
                break
            elif line.startswith("data: "):
                try:
                    tmp = json.loads(line[len("data: "):])["choices"][0]["delta"]["content"]
                    print(end=tmp[-1], flush=True)
                except Exception as e:
                    print(e)
