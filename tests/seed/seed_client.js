// The seed spec's JavaScript client (docs "API Usage Guide" → "Using JavaScript"), copied
// verbatim. tests/test_seed_clients.py puts the URL and a real token into a temporary copy.
// Define the data to be sent in the request
const requestData = {
    messages: [
        { role: "user", content: "請自我介紹" } // Requesting a self-introduction
    ],
    model: "gemini-pro" // Using the Gemini Pro model
};

// API endpoint for the request
const apiUrl = 'http://localhost/v1.0/chat/completions';

// Headers for the request, including authorization
const headers = {
    'Content-Type': 'application/json',
    'Authorization': 'Bearer YOUR_AUTH_TOKEN'
};

// Initialize an empty output variable
var output = ""

// Make a POST request to the API
fetch(apiUrl, {
    method: 'POST',
    headers: headers,
    body: JSON.stringify(requestData) // Send the requestData as JSON
})
.then(response => {
    if (!response.body) {
        throw new Error('ReadableStream not supported');
    }

    // Get a ReadableStream from the response
    const reader = response.body.getReader();

    let buffer = "";
    function readStream() {
        return reader.read().then(({ done, value }) => {
            if (done) {
                console.log("Stream ended");
                return;
            }

            const chunk = new TextDecoder().decode(value);

            buffer += chunk;

            // Process the buffer in chunks until it contains complete JSON objects
            while (buffer.includes("}\n")) {
                const endIndex = buffer.indexOf("}\n") + 2;
                const jsonStr = buffer.substring(6, endIndex);
                buffer = buffer.substring(endIndex);

                try {
                    // Parse the JSON and extract the content
                    const data = JSON.parse(jsonStr)["choices"][0]["delta"]["content"];
                    output += data;
                    console.clear(); // Clear the console
                    console.log(output); // Output the result to the console
                } catch (error) {
                    console.error('Error parsing JSON:', error);
                }
            }

            return readStream();
        });
    }

    return readStream();
})
.catch(error => {
    console.error('Error:', error);
});
