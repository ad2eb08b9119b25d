"""Write the tool-calling evaluation set (``cases.jsonl``) from the hand-written lists below.

Run from the repository root: ``python scripts/eval_data/write_cases.py``. The output is
committed; edit the lists here and re-run to change it. Tools live in ``tools.json``.

Every category's cases alternate between the ``dev`` split (tune on it) and the held-out
``test`` split (report only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


W, S, FX, T, MAIL = (
    "get_current_weather",
    "get_stock_price",
    "convert_currency",
    "get_time",
    "send_email",
)
WEB, TR, CAL, FOOD = "search_web", "translate_text", "create_calendar_event", "find_restaurants"
FLIGHT, REMIND, NEWS = "get_flight_status", "set_reminder", "get_news"

# (question, tools offered, expected call)
SINGLE = [
    ("What is the weather in San Francisco?", [W], call(W, location="San Francisco")),
    ("What's the weather like in Tokyo right now?", [W], call(W, location="Tokyo")),
    ("Is it raining in London?", [W], call(W, location="London")),
    ("How hot is it in Phoenix today?", [W], call(W, location="Phoenix")),
    ("Tell me the current weather in Paris.", [W], call(W, location="Paris")),
    ("Weather in Berlin please", [W], call(W, location="Berlin")),
    (
        "What's the temperature in Sydney in celsius?",
        [W],
        call(W, location="Sydney", unit="celsius"),
    ),
    (
        "How cold is it in Chicago, in fahrenheit?",
        [W],
        call(W, location="Chicago", unit="fahrenheit"),
    ),
    ("What is Apple's stock price? The ticker is AAPL.", [S], call(S, symbol="AAPL")),
    ("Get me the current price of MSFT.", [S], call(S, symbol="MSFT")),
    ("How much is TSLA trading at?", [S], call(S, symbol="TSLA")),
    ("Price of NVDA stock?", [S], call(S, symbol="NVDA")),
    (
        "Convert 100 US dollars to euros.",
        [FX],
        call(FX, amount=100, from_currency="USD", to_currency="EUR"),
    ),
    (
        "How many Japanese yen is 50 GBP?",
        [FX],
        call(FX, amount=50, from_currency="GBP", to_currency="JPY"),
    ),
    ("Convert 250 EUR to USD.", [FX], call(FX, amount=250, from_currency="EUR", to_currency="USD")),
    ("What time is it in Tokyo?", [T], call(T, city="Tokyo")),
    ("What's the local time in New York?", [T], call(T, city="New York")),
    ("Current time in Dubai?", [T], call(T, city="Dubai")),
    (
        "Search the web for the best hiking trails in Colorado.",
        [WEB],
        call(WEB, query="best hiking trails in Colorado"),
    ),
    ("Look up the latest Python release on the web.", [WEB], call(WEB)),
    (
        "Translate 'good morning' into Spanish.",
        [TR],
        call(TR, text="good morning", target_language="Spanish"),
    ),
    (
        "How do you say 'thank you' in Japanese? Use the translator.",
        [TR],
        call(TR, text="thank you", target_language="Japanese"),
    ),
    (
        "Translate 'where is the station' to German.",
        [TR],
        call(TR, text="where is the station", target_language="German"),
    ),
    ("Find Italian restaurants in Boston.", [FOOD], call(FOOD, city="Boston", cuisine="Italian")),
    ("Any sushi places in Seattle?", [FOOD], call(FOOD, city="Seattle")),
    (
        "Find me a Mexican restaurant in Austin.",
        [FOOD],
        call(FOOD, city="Austin", cuisine="Mexican"),
    ),
    ("What's the status of flight UA123?", [FLIGHT], call(FLIGHT, flight_number="UA123")),
    ("Is flight BA249 on time?", [FLIGHT], call(FLIGHT, flight_number="BA249")),
    ("Check flight DL50 for me.", [FLIGHT], call(FLIGHT, flight_number="DL50")),
    ("Get the latest news about climate change.", [NEWS], call(NEWS, topic="climate change")),
    ("What's new in the world of football?", [NEWS], call(NEWS, topic="football")),
    ("Show me today's headlines about electric cars.", [NEWS], call(NEWS, topic="electric cars")),
    ("Remind me to call mom at 18:00.", [REMIND], call(REMIND, time="18:00")),
    ("Set a reminder for 07:30 to go running.", [REMIND], call(REMIND, time="07:30")),
    (
        "Put a meeting called Standup on 2025-03-14 at 09:00 in my calendar.",
        [CAL],
        call(CAL, title="Standup", date="2025-03-14", time="09:00"),
    ),
    (
        "Create a calendar event 'Dentist' on 2025-06-02.",
        [CAL],
        call(CAL, title="Dentist", date="2025-06-02"),
    ),
    (
        "Email bob@example.com with the subject 'Lunch' saying let's meet at noon.",
        [MAIL],
        call(MAIL, to="bob@example.com", subject="Lunch"),
    ),
    (
        "Send an email to alice@example.com, subject 'Report', body 'The report is attached.'",
        [MAIL],
        call(MAIL, to="alice@example.com", subject="Report"),
    ),
    ("What's the weather in Madrid?", [W], call(W, location="Madrid")),
    ("Is it sunny in Rome today?", [W], call(W, location="Rome")),
]

# (question, tools offered, expected call): the right tool among several.
CHOOSE = [
    ("What is the weather in Boston?", [S, W, T], call(W, location="Boston")),
    ("What time is it in London?", [W, T, NEWS], call(T, city="London")),
    ("How much is AMZN trading at?", [W, S, FX], call(S, symbol="AMZN")),
    (
        "Convert 20 CAD to USD.",
        [S, FX, T],
        call(FX, amount=20, from_currency="CAD", to_currency="USD"),
    ),
    (
        "Translate 'I love you' into French.",
        [WEB, TR, MAIL],
        call(TR, text="I love you", target_language="French"),
    ),
    ("Find Thai food in Denver.", [FOOD, W, FLIGHT], call(FOOD, city="Denver", cuisine="Thai")),
    ("Is flight AF11 delayed?", [FLIGHT, W, T], call(FLIGHT, flight_number="AF11")),
    ("Latest news on the stock market?", [NEWS, S, WEB], call(NEWS, topic="stock market")),
    ("Remind me at 21:00 to take my pills.", [REMIND, CAL, MAIL], call(REMIND, time="21:00")),
    (
        "Schedule 'Team lunch' on 2025-05-20 at 12:30.",
        [CAL, REMIND, MAIL],
        call(CAL, title="Team lunch", date="2025-05-20", time="12:30"),
    ),
    (
        "Send an email to carol@example.com with subject 'Hi' and body 'Hello Carol'.",
        [MAIL, TR, WEB],
        call(MAIL, to="carol@example.com", subject="Hi"),
    ),
    (
        "Search the web for vegan brownie recipes.",
        [WEB, FOOD, NEWS],
        call(WEB, query="vegan brownie recipes"),
    ),
    ("What's the weather in Toronto?", [W, FOOD, FLIGHT], call(W, location="Toronto")),
    ("What's the current time in Singapore?", [T, S, W], call(T, city="Singapore")),
    ("Stock price of GOOG?", [NEWS, S, W], call(S, symbol="GOOG")),
    (
        "How many euros is 75 dollars?",
        [FX, W, S],
        call(FX, amount=75, from_currency="USD", to_currency="EUR"),
    ),
    (
        "Translate 'cheers' to Italian.",
        [TR, FX, T],
        call(TR, text="cheers", target_language="Italian"),
    ),
    (
        "Find Indian restaurants in Chicago.",
        [W, FOOD, T],
        call(FOOD, city="Chicago", cuisine="Indian"),
    ),
    ("What's the status of flight LH400?", [S, FLIGHT, NEWS], call(FLIGHT, flight_number="LH400")),
    ("Any news about space exploration?", [WEB, NEWS, TR], call(NEWS, topic="space exploration")),
    ("How warm is it in Lisbon?", [T, W, FX], call(W, location="Lisbon")),
    ("What time is it in Los Angeles?", [T, W, S, NEWS], call(T, city="Los Angeles")),
    ("Check the price of META shares.", [S, NEWS, WEB, FX], call(S, symbol="META")),
    (
        "Convert 10 CHF into JPY.",
        [S, FX, W, T],
        call(FX, amount=10, from_currency="CHF", to_currency="JPY"),
    ),
    ("Set a reminder at 06:45 to feed the cat.", [CAL, REMIND, T, W], call(REMIND, time="06:45")),
    (
        "Add 'Board meeting' to my calendar for 2025-09-01.",
        [REMIND, CAL, MAIL, T],
        call(CAL, title="Board meeting", date="2025-09-01"),
    ),
    ("Weather in Cairo?", [FLIGHT, W, FOOD, NEWS], call(W, location="Cairo")),
    ("Look up flight QF1.", [FLIGHT, T, W, S], call(FLIGHT, flight_number="QF1")),
    (
        "Translate 'see you tomorrow' into Portuguese.",
        [MAIL, TR, WEB, NEWS],
        call(TR, text="see you tomorrow", target_language="Portuguese"),
    ),
    (
        "Search online for cheap flights to Iceland.",
        [WEB, FLIGHT, FX, W],
        call(WEB, query="cheap flights to Iceland"),
    ),
    ("Is it snowing in Oslo?", [S, T, W], call(W, location="Oslo")),
    ("Time in Mumbai now?", [FOOD, T, NEWS], call(T, city="Mumbai")),
    (
        "Find French restaurants in Montreal.",
        [FOOD, TR, W],
        call(FOOD, city="Montreal", cuisine="French"),
    ),
    ("Get the news about the Olympics.", [S, WEB, NEWS], call(NEWS, topic="Olympics")),
    (
        "Email dave@example.com subject 'Invoice' body 'Please pay the invoice.'",
        [CAL, MAIL, REMIND],
        call(MAIL, to="dave@example.com", subject="Invoice"),
    ),
    ("What is IBM's share price?", [FX, S, T], call(S, symbol="IBM")),
    (
        "Convert 1000 JPY to USD.",
        [FX, S, NEWS],
        call(FX, amount=1000, from_currency="JPY", to_currency="USD"),
    ),
    ("What's the forecast for Dublin right now?", [W, NEWS, WEB], call(W, location="Dublin")),
    ("Remind me to water the plants at 08:00.", [REMIND, W, FOOD], call(REMIND, time="08:00")),
    ("What is the status of flight EK202?", [FLIGHT, FOOD, W], call(FLIGHT, flight_number="EK202")),
]

# (question, tools offered, expected calls): several calls of one tool.
PARALLEL_ONE = [
    (
        "What's the weather in San Francisco and in Tokyo?",
        [W],
        [call(W, location="San Francisco"), call(W, location="Tokyo")],
    ),
    (
        "Tell me the weather in Paris and Berlin.",
        [W],
        [call(W, location="Paris"), call(W, location="Berlin")],
    ),
    (
        "How is the weather in London, Madrid and Rome?",
        [W],
        [call(W, location="London"), call(W, location="Madrid"), call(W, location="Rome")],
    ),
    (
        "Compare the weather in Chicago and Miami.",
        [W],
        [call(W, location="Chicago"), call(W, location="Miami")],
    ),
    (
        "Weather for Oslo and Helsinki, please.",
        [W],
        [call(W, location="Oslo"), call(W, location="Helsinki")],
    ),
    (
        "Get the stock prices of AAPL and MSFT.",
        [S],
        [call(S, symbol="AAPL"), call(S, symbol="MSFT")],
    ),
    (
        "What are TSLA, NVDA and AMD trading at?",
        [S],
        [call(S, symbol="TSLA"), call(S, symbol="NVDA"), call(S, symbol="AMD")],
    ),
    ("Prices for GOOG and AMZN?", [S], [call(S, symbol="GOOG"), call(S, symbol="AMZN")]),
    (
        "What time is it in Tokyo and in New York?",
        [T],
        [call(T, city="Tokyo"), call(T, city="New York")],
    ),
    ("Current time in London and Sydney?", [T], [call(T, city="London"), call(T, city="Sydney")]),
    (
        "Translate 'hello' into French and into Spanish.",
        [TR],
        [
            call(TR, text="hello", target_language="French"),
            call(TR, text="hello", target_language="Spanish"),
        ],
    ),
    (
        "Translate 'goodbye' to German and Italian.",
        [TR],
        [
            call(TR, text="goodbye", target_language="German"),
            call(TR, text="goodbye", target_language="Italian"),
        ],
    ),
    (
        "Check flights UA1 and UA2.",
        [FLIGHT],
        [call(FLIGHT, flight_number="UA1"), call(FLIGHT, flight_number="UA2")],
    ),
    (
        "Status of flights BA10 and AF20?",
        [FLIGHT],
        [call(FLIGHT, flight_number="BA10"), call(FLIGHT, flight_number="AF20")],
    ),
    (
        "Find restaurants in Boston and in Denver.",
        [FOOD],
        [call(FOOD, city="Boston"), call(FOOD, city="Denver")],
    ),
    (
        "Get news about tennis and about golf.",
        [NEWS],
        [call(NEWS, topic="tennis"), call(NEWS, topic="golf")],
    ),
    (
        "Convert 100 USD to EUR and 100 USD to GBP.",
        [FX],
        [
            call(FX, amount=100, from_currency="USD", to_currency="EUR"),
            call(FX, amount=100, from_currency="USD", to_currency="GBP"),
        ],
    ),
    (
        "Is it raining in Seattle or in Portland?",
        [W],
        [call(W, location="Seattle"), call(W, location="Portland")],
    ),
    ("Weather in Dubai and Cairo?", [W], [call(W, location="Dubai"), call(W, location="Cairo")]),
    (
        "Look up the weather in Toronto, Vancouver and Montreal.",
        [W],
        [call(W, location="Toronto"), call(W, location="Vancouver"), call(W, location="Montreal")],
    ),
    ("Stock price of IBM and of ORCL?", [S], [call(S, symbol="IBM"), call(S, symbol="ORCL")]),
    ("What time is it in Paris and Dubai?", [T], [call(T, city="Paris"), call(T, city="Dubai")]),
    (
        "Set reminders at 09:00 to stretch and at 15:00 to drink water.",
        [REMIND],
        [call(REMIND, time="09:00"), call(REMIND, time="15:00")],
    ),
    (
        "Search the web for 'rust tutorial' and for 'go tutorial'.",
        [WEB],
        [call(WEB, query="rust tutorial"), call(WEB, query="go tutorial")],
    ),
    (
        "What's the weather in Lisbon and Porto?",
        [W],
        [call(W, location="Lisbon"), call(W, location="Porto")],
    ),
    (
        "Give me the weather in Beijing and Shanghai.",
        [W],
        [call(W, location="Beijing"), call(W, location="Shanghai")],
    ),
    ("Check the prices of KO and PEP.", [S], [call(S, symbol="KO"), call(S, symbol="PEP")]),
    ("Local time in Berlin and Moscow?", [T], [call(T, city="Berlin"), call(T, city="Moscow")]),
    (
        "Find sushi in Seattle and tacos in Austin.",
        [FOOD],
        [call(FOOD, city="Seattle"), call(FOOD, city="Austin")],
    ),
    (
        "Weather in Athens and Istanbul, please.",
        [W],
        [call(W, location="Athens"), call(W, location="Istanbul")],
    ),
]

# (question, tools offered, expected calls): calls of different tools.
PARALLEL_MANY = [
    (
        "What's the weather in Tokyo and what time is it there?",
        [W, T],
        [call(W, location="Tokyo"), call(T, city="Tokyo")],
    ),
    (
        "Get the stock price of NVDA and the latest news about NVIDIA.",
        [S, NEWS],
        [call(S, symbol="NVDA"), call(NEWS, topic="NVIDIA")],
    ),
    (
        "What's the weather in Paris, and convert 100 USD to EUR.",
        [W, FX],
        [call(W, location="Paris"), call(FX, amount=100, from_currency="USD", to_currency="EUR")],
    ),
    (
        "Check flight UA90 and the weather in Denver.",
        [FLIGHT, W],
        [call(FLIGHT, flight_number="UA90"), call(W, location="Denver")],
    ),
    (
        "Find Italian restaurants in Rome and translate 'the bill, please' into Italian.",
        [FOOD, TR],
        [
            call(FOOD, city="Rome", cuisine="Italian"),
            call(TR, text="the bill, please", target_language="Italian"),
        ],
    ),
    (
        "What time is it in London and what's the price of AAPL?",
        [T, S],
        [call(T, city="London"), call(S, symbol="AAPL")],
    ),
    (
        "Remind me at 10:00 to call Sam, and search the web for Sam's bakery.",
        [REMIND, WEB],
        [call(REMIND, time="10:00"), call(WEB, query="Sam's bakery")],
    ),
    (
        "Weather in Berlin and news about Germany.",
        [W, NEWS],
        [call(W, location="Berlin"), call(NEWS, topic="Germany")],
    ),
    (
        "Convert 50 EUR to USD and tell me the stock price of TSLA.",
        [FX, S],
        [call(FX, amount=50, from_currency="EUR", to_currency="USD"), call(S, symbol="TSLA")],
    ),
    (
        "Get the status of flight DL8 and the time in Atlanta.",
        [FLIGHT, T],
        [call(FLIGHT, flight_number="DL8"), call(T, city="Atlanta")],
    ),
    (
        "Weather in Sydney and restaurants in Sydney.",
        [W, FOOD],
        [call(W, location="Sydney"), call(FOOD, city="Sydney")],
    ),
    (
        "Translate 'hello' to Japanese and tell me the time in Tokyo.",
        [TR, T],
        [call(TR, text="hello", target_language="Japanese"), call(T, city="Tokyo")],
    ),
    (
        "News about AI and the price of MSFT.",
        [NEWS, S],
        [call(NEWS, topic="AI"), call(S, symbol="MSFT")],
    ),
    (
        "What's the weather in Madrid and the time in Madrid?",
        [W, T, S],
        [call(W, location="Madrid"), call(T, city="Madrid")],
    ),
    (
        "Search the web for Lisbon hotels and get the weather in Lisbon.",
        [WEB, W, NEWS],
        [call(WEB, query="Lisbon hotels"), call(W, location="Lisbon")],
    ),
    (
        "Price of AMZN and news about Amazon.",
        [S, NEWS, W],
        [call(S, symbol="AMZN"), call(NEWS, topic="Amazon")],
    ),
    (
        "Check flight BA1 and find restaurants in London.",
        [FLIGHT, FOOD, T],
        [call(FLIGHT, flight_number="BA1"), call(FOOD, city="London")],
    ),
    (
        "What's the time in Dubai and convert 200 AED to USD?",
        [T, FX],
        [call(T, city="Dubai"), call(FX, amount=200, from_currency="AED", to_currency="USD")],
    ),
    (
        "Set a reminder at 19:00 to cook and look up the weather in Chicago.",
        [REMIND, W],
        [call(REMIND, time="19:00"), call(W, location="Chicago")],
    ),
    (
        "Get the weather in Oslo and news about Norway.",
        [NEWS, W],
        [call(W, location="Oslo"), call(NEWS, topic="Norway")],
    ),
    (
        "Stock price of GOOG and the current time in San Francisco.",
        [S, T],
        [call(S, symbol="GOOG"), call(T, city="San Francisco")],
    ),
    (
        "Translate 'good night' into French and find French restaurants in Paris.",
        [TR, FOOD],
        [
            call(TR, text="good night", target_language="French"),
            call(FOOD, city="Paris", cuisine="French"),
        ],
    ),
    (
        "Weather in Seattle and the status of flight AS300.",
        [W, FLIGHT],
        [call(W, location="Seattle"), call(FLIGHT, flight_number="AS300")],
    ),
    (
        "Convert 30 GBP to EUR and get news about the pound.",
        [FX, NEWS],
        [call(FX, amount=30, from_currency="GBP", to_currency="EUR"), call(NEWS, topic="pound")],
    ),
    (
        "What time is it in Rome, and what's the weather there?",
        [T, W],
        [call(T, city="Rome"), call(W, location="Rome")],
    ),
    (
        "Search the web for marathon training plans and set a reminder at 06:00 to run.",
        [WEB, REMIND],
        [call(WEB, query="marathon training plans"), call(REMIND, time="06:00")],
    ),
    (
        "Get AAPL's price and the weather in Cupertino.",
        [S, W],
        [call(S, symbol="AAPL"), call(W, location="Cupertino")],
    ),
    (
        "News about elections and the time in Washington.",
        [NEWS, T],
        [call(NEWS, topic="elections"), call(T, city="Washington")],
    ),
    (
        "Find Chinese restaurants in Vancouver and the weather in Vancouver.",
        [FOOD, W],
        [call(FOOD, city="Vancouver", cuisine="Chinese"), call(W, location="Vancouver")],
    ),
    (
        "Check flight QF2 and tell me the time in Sydney.",
        [FLIGHT, T],
        [call(FLIGHT, flight_number="QF2"), call(T, city="Sydney")],
    ),
]

# (question, tools offered): no offered tool applies; the answer is text.
NO_CALL = [
    ("Tell me a joke.", [W]),
    ("Write a Python function that reverses a string.", [W]),
    ("What is the capital of France?", [S]),
    ("Hi! How are you?", [W]),
    ("Explain what a hash map is in two sentences.", [T]),
    ("Write a haiku about autumn.", [S, W]),
    ("What is 17 times 3?", [W]),
    ("Summarize the plot of Romeo and Juliet in one sentence.", [FX]),
    ("Thanks, that's all I needed!", [W, T]),
    ("What does HTTP status 404 mean?", [W]),
    ("Give me three tips for better sleep.", [S]),
    ("Who wrote Pride and Prejudice?", [W, FX]),
    ("How do I read a JSON file in Python?", [T]),
    ("What is the difference between a list and a tuple in Python?", [W]),
    ("Tell me a fun fact about octopuses.", [S, T]),
    ("Write a SQL query that counts the rows of a table named users.", [W]),
    ("What is the square root of 144?", [FX]),
    ("Recommend a good book about history.", [W]),
    ("Can you explain recursion simply?", [S]),
    ("Good morning!", [W, S]),
    ("What is photosynthesis?", [T, W]),
    ("Write a short poem about the sea.", [FLIGHT]),
    ("How many legs does a spider have?", [W]),
    ("Explain the difference between TCP and UDP.", [S]),
    ("What's your name?", [W]),
    ("Give me a synonym for 'happy'.", [FX, T]),
    ("Tell me a riddle.", [W]),
    ("Sort this list in ascending order: 5, 2, 9, 1.", [S]),
    ("What year did World War II end?", [W]),
    ("Write a bash one-liner that counts lines in a file.", [T]),
    ("What is a prime number?", [W, S]),
    ("Describe a cat in three words.", [FOOD]),
    ("How do I center a div in CSS?", [W]),
    ("Say something encouraging.", [S]),
    ("What is the boiling point of water in Celsius?", [FX]),
    ("Translate this Python to JavaScript: print('hi')", [W]),
    ("Who painted the Mona Lisa?", [T]),
    ("What is machine learning?", [W, NEWS]),
    ("Please explain what an API is.", [FLIGHT, W]),
    ("Okay, thank you very much.", [S, W]),
]

# (question, tools offered, calls made, results, words the answer must mention: each entry
# must occur, case-insensitively; ``a|b`` accepts either)
AGENT_LOOP = [
    (
        "What is the weather in San Francisco?",
        [W],
        [call(W, location="San Francisco, CA")],
        [{"location": "San Francisco", "temperature": "60"}],
        ["60"],
    ),
    (
        "What's the weather like in Tokyo?",
        [W],
        [call(W, location="Tokyo")],
        [{"location": "Tokyo", "temperature": "75"}],
        ["75"],
    ),
    (
        "How hot is it in Phoenix?",
        [W],
        [call(W, location="Phoenix")],
        [{"location": "Phoenix", "temperature": "104", "unit": "fahrenheit"}],
        ["104"],
    ),
    (
        "Is it cold in Oslo?",
        [W],
        [call(W, location="Oslo")],
        [{"location": "Oslo", "temperature": "-3", "unit": "celsius"}],
        ["-3"],
    ),
    (
        "What's Apple's stock price?",
        [S],
        [call(S, symbol="AAPL")],
        [{"symbol": "AAPL", "price": 189.5}],
        ["189.5"],
    ),
    (
        "How much is NVDA trading at?",
        [S, NEWS],
        [call(S, symbol="NVDA")],
        [{"symbol": "NVDA", "price": 875.25}],
        ["875.25"],
    ),
    (
        "Convert 100 USD to EUR.",
        [FX],
        [call(FX, amount=100, from_currency="USD", to_currency="EUR")],
        [{"result": 92.4, "currency": "EUR"}],
        ["92.4"],
    ),
    (
        "What time is it in London?",
        [T],
        [call(T, city="London")],
        [{"city": "London", "time": "14:05"}],
        ["14:05"],
    ),
    (
        "Translate 'good morning' into Spanish.",
        [TR],
        [call(TR, text="good morning", target_language="Spanish")],
        [{"translation": "buenos días"}],
        ["buenos"],
    ),
    (
        "Is flight UA123 on time?",
        [FLIGHT],
        [call(FLIGHT, flight_number="UA123")],
        [{"flight": "UA123", "status": "delayed", "delay_minutes": 45}],
        ["45"],
    ),
    (
        "Find Italian restaurants in Boston.",
        [FOOD],
        [call(FOOD, city="Boston", cuisine="Italian")],
        [{"restaurants": ["Giacomo's", "Mamma Maria"]}],
        ["Giacomo"],
    ),
    (
        "Latest news about climate change?",
        [NEWS],
        [call(NEWS, topic="climate change")],
        [{"headlines": ["Record ocean temperatures reported"]}],
        ["ocean"],
    ),
    (
        "Remind me to call mom at 18:00.",
        [REMIND],
        [call(REMIND, text="call mom", time="18:00")],
        [{"status": "reminder set", "time": "18:00"}],
        ["18:00"],
    ),
    (
        "What's the weather in Paris?",
        [W, T],
        [call(W, location="Paris")],
        [{"location": "Paris", "temperature": "70"}],
        ["70"],
    ),
    (
        "Weather in Berlin?",
        [W, S, T],
        [call(W, location="Berlin")],
        [{"location": "Berlin", "temperature": "12", "condition": "rain"}],
        ["12"],
    ),
    (
        "What's the weather in San Francisco and in Tokyo?",
        [W],
        [call(W, location="San Francisco"), call(W, location="Tokyo")],
        [
            {"location": "San Francisco", "temperature": "60"},
            {"location": "Tokyo", "temperature": "75"},
        ],
        ["60", "75"],
    ),
    (
        "Get the stock prices of AAPL and MSFT.",
        [S],
        [call(S, symbol="AAPL"), call(S, symbol="MSFT")],
        [{"symbol": "AAPL", "price": 189.5}, {"symbol": "MSFT", "price": 410.2}],
        ["189.5", "410.2"],
    ),
    (
        "What time is it in Tokyo and New York?",
        [T],
        [call(T, city="Tokyo"), call(T, city="New York")],
        [{"city": "Tokyo", "time": "22:00"}, {"city": "New York", "time": "08:00"}],
        ["22:00", "08:00"],
    ),
    (
        "What's the weather in Tokyo and what time is it there?",
        [W, T],
        [call(W, location="Tokyo"), call(T, city="Tokyo")],
        [{"location": "Tokyo", "temperature": "75"}, {"city": "Tokyo", "time": "22:00"}],
        ["75", "22:00"],
    ),
    (
        "Price of TSLA?",
        [S],
        [call(S, symbol="TSLA")],
        [{"symbol": "TSLA", "price": 242.8}],
        ["242.8"],
    ),
    (
        "What is the weather in Madrid?",
        [W],
        [call(W, location="Madrid")],
        [{"location": "Madrid", "temperature": "88"}],
        ["88"],
    ),
    (
        "Convert 50 GBP to JPY.",
        [FX, S],
        [call(FX, amount=50, from_currency="GBP", to_currency="JPY")],
        [{"result": 9450, "currency": "JPY"}],
        ["9450|9,450"],
    ),
    (
        "Time in Sydney?",
        [T, W],
        [call(T, city="Sydney")],
        [{"city": "Sydney", "time": "07:15"}],
        ["07:15|7:15"],
    ),
    (
        "Check flight BA249.",
        [FLIGHT, W],
        [call(FLIGHT, flight_number="BA249")],
        [{"flight": "BA249", "status": "on time", "gate": "B12"}],
        ["on time|B12"],
    ),
    (
        "What's the weather in Chicago?",
        [W],
        [call(W, location="Chicago")],
        [{"location": "Chicago", "temperature": "41"}],
        ["41"],
    ),
    (
        "How warm is it in Lisbon?",
        [W, FX],
        [call(W, location="Lisbon")],
        [{"location": "Lisbon", "temperature": "77"}],
        ["77"],
    ),
    (
        "Weather in Dubai and Cairo?",
        [W],
        [call(W, location="Dubai"), call(W, location="Cairo")],
        [{"location": "Dubai", "temperature": "95"}, {"location": "Cairo", "temperature": "90"}],
        ["95", "90"],
    ),
    (
        "Stock price of GOOG?",
        [S, W],
        [call(S, symbol="GOOG")],
        [{"symbol": "GOOG", "price": 141.3}],
        ["141.3"],
    ),
    (
        "What's the weather in Rome?",
        [W, NEWS],
        [call(W, location="Rome")],
        [{"location": "Rome", "temperature": "66"}],
        ["66"],
    ),
    (
        "Translate 'thank you' into Japanese.",
        [TR, W],
        [call(TR, text="thank you", target_language="Japanese")],
        [{"translation": "arigatou"}],
        ["arigat"],
    ),
]


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _loop_messages(
    question: str, calls: list[dict[str, Any]], results: list[Any]
) -> list[dict[str, Any]]:
    ids = [f"call_eval{index:019d}" for index in range(len(calls))]
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": i,
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for i, c in zip(ids, calls, strict=True)
        ],
    }
    tools = [
        {"role": "tool", "tool_call_id": i, "content": json.dumps(r)}
        for i, r in zip(ids, results, strict=True)
    ]
    return [*_user(question), assistant, *tools]


def cases() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(
        category: str,
        index: int,
        messages: list[dict[str, Any]],
        tools: list[str],
        expected: dict[str, Any],
    ) -> None:
        split = "dev" if index % 2 == 0 else "test"
        out.append(
            {
                "id": f"{category}-{index:03d}",
                "category": category,
                "split": split,
                "messages": messages,
                "tools": tools,
                "expected": expected,
            }
        )

    for i, (q, tools, c) in enumerate(SINGLE):
        add("single", i, _user(q), tools, {"calls": [c]})
    for i, (q, tools, c) in enumerate(CHOOSE):
        add("choose", i, _user(q), tools, {"calls": [c]})
    for i, (q, tools, cs) in enumerate(PARALLEL_ONE):
        add("parallel_one", i, _user(q), tools, {"calls": cs})
    for i, (q, tools, cs) in enumerate(PARALLEL_MANY):
        add("parallel_many", i, _user(q), tools, {"calls": cs})
    for i, (q, tools) in enumerate(NO_CALL):
        add("no_call", i, _user(q), tools, {"calls": []})
    for i, (q, tools, cs, results, mentions) in enumerate(AGENT_LOOP):
        add(
            "agent_loop",
            i,
            _loop_messages(q, cs, results),
            tools,
            {"calls": [], "mentions": mentions},
        )
    return out


def main() -> None:
    tools = json.loads((HERE / "tools.json").read_text(encoding="utf-8"))
    lines = []
    for case in cases():
        missing = set(case["tools"]) - set(tools)
        assert not missing, (case["id"], missing)
        lines.append(json.dumps(case, ensure_ascii=False))
    (HERE / "cases.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} cases")


if __name__ == "__main__":
    main()
