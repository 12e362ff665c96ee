"""Write ``labelled.jsonl``: chat requests labelled ``simple`` or ``hard`` for the tier classifier.

    python benchmarks/tiers/make_labelled.py          # rewrites benchmarks/tiers/labelled.jsonl

The committed JSONL is the source of truth; this script is how it was made, so
a reader can see the intent behind each group and add to it. Every line is
``{"id", "label", "lang", "kind", "request"}`` where ``request`` is an OpenAI
chat completions body as a client would send it.

What the labels mean: ``hard`` is a request where a premium model's answer is
materially better than a cheap one's (proofs, non-trivial design, algorithms
with correctness or complexity arguments, concurrency and distributed-systems
debugging, multi-step quantitative reasoning, analysis that weighs
trade-offs); ``simple`` is one a cheap model answers as well (look-ups,
translation, summaries, classification, extraction, reformatting, small code
edits, short writing, small talk, explanations of everyday concepts).

The set is built to be unkind to naive rules (see ``kind``): long but simple
(a pasted 1,000-word review to classify), short but hard (a one-line proof),
code-looking but trivial (reformat this JSON), multi-turn where the hard part
is earlier (``and why?``), agents that carry thirty tools with a simple ask,
pipelines whose instruction is in the system prompt, simple asks that contain
hard-sounding words ("translate 'prove it'"), and seven languages or more.
Long documents are composed from sentence pools with a fixed seed, so the file
stays small and the output is reproducible.
"""

# ruff: noqa: RUF001  (the requests are in Chinese, Japanese, Russian... on purpose)
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("labelled.jsonl")

Msg = dict[str, Any]


def system(text: str) -> Msg:
    return {"role": "system", "content": text}


def user(text: str) -> Msg:
    return {"role": "user", "content": text}


def assistant(text: str) -> Msg:
    return {"role": "assistant", "content": text}


# --- tools: what an agent framework sends on every call ---------------------------------


def _fn(name: str, description: str, **params: tuple[str, str]) -> dict[str, Any]:
    properties = {key: {"type": kind, "description": text} for key, (kind, text) in params.items()}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": list(params)[:1]},
        },
    }


TOOLS = [
    _fn("get_weather", "Current weather for a city.", city=("string", "City name"), unit=("string", "celsius or fahrenheit")),
    _fn("get_forecast", "Weather forecast for the next days.", city=("string", "City name"), days=("integer", "1 to 10")),
    _fn("search_web", "Search the web and return the top results.", query=("string", "Search query"), limit=("integer", "Max results")),
    _fn("fetch_url", "Fetch a web page and return its text.", url=("string", "Absolute URL")),
    _fn("send_email", "Send an email on behalf of the user.", to=("string", "Recipient"), subject=("string", "Subject"), body=("string", "Plain-text body")),
    _fn("list_emails", "List recent emails in the inbox.", folder=("string", "Folder name"), unread_only=("boolean", "Only unread")),
    _fn("create_event", "Create a calendar event.", title=("string", "Title"), start=("string", "ISO 8601 start"), end=("string", "ISO 8601 end"), attendees=("array", "Emails")),
    _fn("list_events", "List calendar events in a range.", start=("string", "ISO 8601"), end=("string", "ISO 8601")),
    _fn("create_ticket", "Open a support ticket.", title=("string", "Title"), priority=("string", "low, normal, high"), body=("string", "Description")),
    _fn("list_tickets", "List tickets assigned to the user.", status=("string", "open, closed, all")),
    _fn("update_ticket", "Change a ticket's status or assignee.", ticket_id=("string", "Ticket id"), status=("string", "New status"), assignee=("string", "User")),
    _fn("query_database", "Run a read-only SQL query on the analytics warehouse.", sql=("string", "SQL text")),
    _fn("describe_table", "Columns and types of a warehouse table.", table=("string", "Table name")),
    _fn("run_python", "Execute Python in a sandbox and return stdout.", code=("string", "Source code")),
    _fn("read_file", "Read a file from the workspace.", path=("string", "Relative path")),
    _fn("write_file", "Write a file in the workspace.", path=("string", "Relative path"), content=("string", "Text")),
    _fn("list_files", "List files in a workspace folder.", path=("string", "Folder")),
    _fn("git_log", "Recent commits of the repository.", limit=("integer", "How many")),
    _fn("get_metrics", "Read a time series from the metrics store.", query=("string", "PromQL"), range=("string", "e.g. 1h")),
    _fn("get_logs", "Search service logs.", service=("string", "Service"), query=("string", "Filter"), since=("string", "e.g. 30m")),
    _fn("page_oncall", "Page the on-call engineer.", service=("string", "Service"), message=("string", "Why")),
    _fn("get_stock_price", "Latest price of a ticker.", ticker=("string", "Symbol")),
    _fn("convert_currency", "Convert an amount between currencies.", amount=("number", "Amount"), source=("string", "ISO code"), target=("string", "ISO code")),
    _fn("translate_text", "Machine-translate text.", text=("string", "Text"), target=("string", "Language code")),
    _fn("get_order", "Look up a customer order.", order_id=("string", "Order id")),
    _fn("refund_order", "Refund a customer order.", order_id=("string", "Order id"), reason=("string", "Reason")),
    _fn("lookup_customer", "Find a customer by email.", email=("string", "Email")),
    _fn("set_reminder", "Set a reminder.", text=("string", "What"), at=("string", "ISO 8601")),
    _fn("book_room", "Book a meeting room.", room=("string", "Room"), start=("string", "ISO 8601"), minutes=("integer", "Length")),
    _fn("get_exchange_rates", "Exchange rates for a base currency.", base=("string", "ISO code")),
]

AGENT_SYSTEM = (
    "You are Atlas, the internal assistant of Northwind Ltd. Use the tools when they help; "
    "never invent order numbers, prices or dates. Answer in the user's language. Keep answers short "
    "unless asked otherwise. Today is 2025-03-14; the user's time zone is Europe/Berlin."
)


# --- long documents, composed from sentence pools --------------------------------------

REVIEW = {
    "en": [
        "I bought this blender in March after my old one finally gave up.",
        "The box arrived a day early and everything was packed carefully.",
        "Setting it up took about five minutes, and the manual is clear enough.",
        "The motor is powerful and crushes ice without any trouble.",
        "It is louder than I expected, so early-morning smoothies wake up the whole flat.",
        "The jug is heavy glass, which feels solid but is awkward to pour from with one hand.",
        "Cleaning is easy if you rinse it straight away; dried fruit sticks to the blades otherwise.",
        "My partner makes soup in it twice a week and has had no complaints so far.",
        "The lid fits tightly and has not leaked once, even with hot liquids.",
        "I wish the cord were longer, because our sockets are far from the counter.",
        "Customer service answered my question about spare parts within a day.",
        "After three months the buttons still feel firm and nothing rattles.",
        "The pulse setting is handy for salsa, though the lowest speed is still quite fast.",
        "For the price, I think it is a fair deal compared with the brands in the same shop.",
        "The colour is a bit darker than in the photos, which I actually prefer.",
        "I did wonder why the recipe booklet only has eight recipes, but that hardly matters.",
        "We use it almost every day and it has become part of our morning routine.",
        "Friends who tried it asked where we got it, which says something.",
        "If the noise bothers you, put a folded towel under the base; it helps a little.",
        "Overall it does what it promises and I would buy it again.",
    ],
    "es": [
        "Compré esta cafetera en enero porque la anterior dejó de calentar.",
        "El paquete llegó bien protegido y antes de la fecha prevista.",
        "La instalación es sencilla y las instrucciones están en varios idiomas.",
        "El café sale caliente y con buena crema, incluso con cápsulas genéricas.",
        "Hace algo de ruido al moler, pero nada exagerado.",
        "El depósito de agua es pequeño y hay que rellenarlo a menudo.",
        "Limpiarla lleva poco tiempo si se hace cada día.",
        "Mi hermana la usa para preparar capuchinos y está encantada.",
        "La boquilla de vapor tarda un poco en calentarse.",
        "El diseño es elegante y ocupa poco espacio en la encimera.",
        "El servicio de atención al cliente respondió rápido a mi consulta.",
        "Después de dos meses sigue funcionando como el primer día.",
        "No entiendo por qué no incluye un filtro de agua, pero se puede comprar aparte.",
        "Por este precio, me parece una buena compra.",
        "La recomendaría a cualquiera que tome dos o tres cafés al día.",
        "El cable es corto y tuve que mover el microondas.",
    ],
    "de": [
        "Ich habe diesen Staubsauger im Herbst gekauft, nachdem der alte kaputt gegangen war.",
        "Die Lieferung kam pünktlich und war gut verpackt.",
        "Der Zusammenbau dauerte nur wenige Minuten.",
        "Die Saugleistung ist auf Teppichen wie auf Fliesen sehr gut.",
        "Der Akku hält ungefähr vierzig Minuten, was für unsere Wohnung reicht.",
        "Das Gerät ist etwas schwer, wenn man die Treppe saugt.",
        "Der Behälter lässt sich leicht leeren, ohne dass Staub herumfliegt.",
        "Meine Eltern haben sich nach einer Vorführung das gleiche Modell bestellt.",
        "Die Ladestation steht stabil und nimmt wenig Platz weg.",
        "Warum das Netzteil so groß ist, verstehe ich nicht ganz.",
        "Der Kundendienst hat eine Frage zu Ersatzfiltern schnell beantwortet.",
        "Nach einem halben Jahr funktioniert noch alles einwandfrei.",
        "Die Lautstärke ist angenehm, man kann nebenbei telefonieren.",
        "Für den Preis bin ich insgesamt zufrieden.",
        "Ich würde ihn wieder kaufen.",
    ],
    "fr": [
        "J'ai acheté cet aspirateur robot en février pour notre appartement.",
        "La livraison a été rapide et le carton était en bon état.",
        "L'application se configure en quelques minutes.",
        "Il passe bien sous le canapé et contourne les pieds des chaises.",
        "La batterie tient environ une heure et demie.",
        "Il se coince parfois sur le tapis du salon.",
        "Le bac à poussière est petit, il faut le vider souvent.",
        "Ma voisine l'a trouvé si pratique qu'elle en a commandé un.",
        "Je ne comprends pas pourquoi la carte se réinitialise de temps en temps.",
        "Le service client a répondu en deux jours.",
        "Après quatre mois, il fonctionne toujours correctement.",
        "Le bruit reste raisonnable, on peut regarder la télévision en même temps.",
        "Pour ce prix, c'est un bon rapport qualité-prix.",
        "Je le recommande aux personnes qui ont des animaux.",
    ],
    "zh": [
        "我是在双十一的时候买的这款电饭煲。",
        "快递第二天就到了，包装很结实。",
        "说明书写得很清楚，第一次用就会了。",
        "煮出来的米饭软硬适中，味道很香。",
        "预约功能很方便，早上起来就能喝到粥。",
        "内胆有点重，清洗的时候要小心。",
        "外观简洁，放在厨房里很好看。",
        "我妈妈用了以后也想买一个。",
        "不知道为什么保温的时候会有一点水汽从盖子边上冒出来。",
        "客服回复很快，态度也很好。",
        "用了三个月，没有出现任何问题。",
        "煮饭的时候声音很小，不会吵到家人。",
        "这个价格来说，性价比很高。",
        "总体来说很满意，推荐购买。",
    ],
    "ja": [
        "この加湿器は去年の冬に購入しました。",
        "注文の翌日に届き、梱包も丁寧でした。",
        "設定は簡単で、説明書もわかりやすいです。",
        "寝室で使っていますが、朝の喉の乾燥がかなり減りました。",
        "タンクが小さいので、一晩で空になることがあります。",
        "運転音はとても静かで、眠りを邪魔しません。",
        "なぜか時々ランプが点滅しますが、動作には問題ありません。",
        "掃除は週に一度すれば十分です。",
        "デザインがシンプルで部屋になじみます。",
        "サポートに問い合わせたところ、すぐに返事がありました。",
        "三か月使っていますが、故障はありません。",
        "この値段なら十分満足です。",
        "家族にも勧めたいと思います。",
    ],
    "ru": [
        "Я купил этот чайник в магазине у дома месяц назад.",
        "Коробка была целой, всё аккуратно упаковано.",
        "Вода закипает быстро, примерно за три минуты.",
        "Корпус не нагревается, и это очень удобно.",
        "Крышка открывается плавно, без рывков.",
        "Не понимаю, почему шкала уровня воды такая бледная.",
        "Шнур достаточно длинный, можно поставить чайник где угодно.",
        "Моей маме он тоже понравился, она заказала такой же.",
        "Накипь появляется медленно, чистить легко.",
        "Служба поддержки ответила на мой вопрос в тот же день.",
        "За месяц никаких проблем не возникло.",
        "Работает тихо, не мешает разговаривать.",
        "За эти деньги это отличная покупка.",
        "В целом я доволен и советую друзьям.",
    ],
}

ARTICLE_EN = [
    "The city council met on Tuesday to discuss the new cycling lanes planned for the old town.",
    "Residents have complained for years about the traffic on the main bridge during rush hour.",
    "The proposal would close two streets to cars on weekends and add bike parking near the station.",
    "Shop owners are divided: some expect more customers on foot, others fear losing deliveries.",
    "A survey by the local newspaper found that six in ten residents support the plan.",
    "The council's transport officer said the first lanes could open in the spring.",
    "Critics asked why the budget for road repairs had not been increased at the same time.",
    "The mayor replied that both projects would be funded from the regional grant.",
    "Cyclists' groups welcomed the news and offered to help design the signage.",
    "A final vote is expected at the next meeting in four weeks.",
    "Parents of pupils at the primary school asked for a crossing guard on the new route.",
    "The fire brigade confirmed that emergency access would be kept on every closed street.",
    "Similar schemes in neighbouring towns reduced car traffic by about a fifth.",
    "Some residents worry about parking for visitors during the summer festival.",
    "The council promised to publish a map of the changes before the vote.",
]

MEETING_EN = [
    "Anna: Let's start with the launch date for the mobile app.",
    "Ben: Design is done, but the payment screen still needs a review from legal.",
    "Chloe: Legal said they can look at it on Thursday.",
    "Anna: Then let's aim for the 28th and keep the 4th as a fallback.",
    "Dev: The Android build is green; iOS has one crash on older phones.",
    "Ben: Is that the one with the camera permission?",
    "Dev: Yes, I have a fix, it needs one more day of testing.",
    "Chloe: Marketing wants screenshots by Monday.",
    "Anna: Ben, can you send them the final designs?",
    "Ben: Sure, I'll do it tomorrow morning.",
    "Anna: Budget-wise we are still within the plan.",
    "Chloe: Support asked for a short FAQ before launch.",
    "Dev: I can write the technical part of it.",
    "Anna: Great. Next meeting is Wednesday at ten.",
]

LOG_LINES = [
    "2025-03-14T09:12:{s:02d}Z INFO  api  request_id={r} GET /v1/orders/{o} 200 {ms}ms",
    "2025-03-14T09:12:{s:02d}Z INFO  api  request_id={r} POST /v1/cart 201 {ms}ms",
    "2025-03-14T09:12:{s:02d}Z WARN  api  request_id={r} slow query orders_by_customer {ms}ms",
    "2025-03-14T09:12:{s:02d}Z INFO  worker job=email.send id={o} done in {ms}ms",
    "2025-03-14T09:12:{s:02d}Z ERROR api  request_id={r} GET /v1/orders/{o} 500 upstream timeout after {ms}ms",
]

CONTRACT_EN = [
    "1. The Supplier shall deliver the Goods to the Buyer's warehouse in Rotterdam.",
    "2. Delivery shall take place within thirty (30) days of the order confirmation.",
    "3. The Buyer shall pay each invoice within forty-five (45) days of receipt.",
    "4. Title to the Goods passes to the Buyer upon full payment.",
    "5. The Supplier warrants that the Goods are free from defects for twelve (12) months.",
    "6. Either party may terminate this Agreement with ninety (90) days' written notice.",
    "7. Neither party is liable for delays caused by events beyond its reasonable control.",
    "8. This Agreement is governed by the laws of the Netherlands.",
    "9. Any dispute shall be submitted to the courts of Amsterdam.",
    "10. Notices shall be sent to the addresses stated on the first page.",
    "11. The Supplier shall keep the Buyer's information confidential for five (5) years.",
    "12. Amendments are valid only if made in writing and signed by both parties.",
]


def compose(pool: list[str], seed: int, target_chars: int, joiner: str = " ", paragraph: int = 5) -> str:
    """Sentences drawn from ``pool`` (shuffled, repeated as needed) until ``target_chars``."""
    rng = random.Random(seed)
    sentences: list[str] = []
    length = 0
    while length < target_chars:
        batch = list(pool)
        rng.shuffle(batch)
        for sentence in batch:
            sentences.append(sentence)
            length += len(sentence) + 1
            if length >= target_chars:
                break
    paragraphs = [joiner.join(sentences[i : i + paragraph]) for i in range(0, len(sentences), paragraph)]
    return "\n\n".join(paragraphs)


def review(lang: str, seed: int, words: int = 1000) -> str:
    # ~6 characters per word in Latin and Cyrillic scripts; ~2 characters per word in Chinese and Japanese
    chars = words * (2 if lang in ("zh", "ja") else 6)
    return compose(REVIEW[lang], seed, chars, joiner="" if lang in ("zh", "ja") else " ")


def logs(seed: int, lines: int) -> str:
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        template = LOG_LINES[rng.randrange(len(LOG_LINES) - 1)] if i % 17 else LOG_LINES[-1]
        out.append(template.format(s=i % 60, r=f"{rng.getrandbits(32):08x}", o=rng.randrange(10000, 99999), ms=rng.randrange(3, 900)))
    return "\n".join(out)


# --- the set ----------------------------------------------------------------------------

Record = dict[str, Any]
records: list[Record] = []


ROUND = 1  # 2: written after the classifier was frozen, scored once (see evaluate.py)


def add(kind: str, label: str, lang: str, messages: list[Msg], **extra: Any) -> None:
    number = sum(1 for r in records if r["kind"] == kind) + 1
    request: dict[str, Any] = {"model": "auto", "messages": messages, **extra}
    records.append(
        {"id": f"{kind}-{number:03d}", "label": label, "lang": lang, "kind": kind, "round": ROUND, "request": request}
    )


def single(kind: str, label: str, items: list[tuple[str, str]], **extra: Any) -> None:
    for lang, text in items:
        add(kind, label, lang, [user(text)], **extra)


# Short factual questions and look-ups.
single("short-simple", "simple", [
    ("en", "What's the capital of Australia?"),
    ("en", "How many ounces are in a pound?"),
    ("en", "Who wrote Pride and Prejudice?"),
    ("en", "what year did the berlin wall fall"),
    ("en", "Is a tomato a fruit or a vegetable?"),
    ("en", "What time zone is Chicago in?"),
    ("en", "Give me a synonym for 'happy'."),
    ("en", "How do you spell 'necessary'?"),
    ("en", "What does HTTP stand for?"),
    ("en", "What is the boiling point of water in Fahrenheit?"),
    ("es", "¿Cuál es la capital de Canadá?"),
    ("es", "¿Cuántos días tiene un año bisiesto?"),
    ("es", "¿Quién pintó el Guernica?"),
    ("de", "Wie hoch ist die Zugspitze?"),
    ("de", "Wer hat den Faust geschrieben?"),
    ("de", "Was ist die Hauptstadt von Portugal?"),
    ("fr", "Quelle est la capitale de la Suisse ?"),
    ("fr", "Combien de joueurs dans une équipe de rugby ?"),
    ("fr", "Qui a écrit Les Misérables ?"),
    ("zh", "中国最长的河流是哪一条？"),
    ("zh", "一年有多少个星期？"),
    ("zh", "《红楼梦》的作者是谁？"),
    ("ja", "富士山の高さは何メートルですか？"),
    ("ja", "日本の首都はどこですか？"),
    ("ru", "Какая столица у Австралии?"),
    ("ru", "Сколько планет в Солнечной системе?"),
    ("ru", "Кто написал «Войну и мир»?"),
    ("pt", "Qual é a capital do Brasil?"),
    ("it", "Quanti abitanti ha Roma?"),
    ("ko", "한국의 수도는 어디인가요?"),
])

# Everyday explanations: a cheap model answers these as well as a premium one.
single("explain-simple", "simple", [
    ("en", "Why is the sky blue?"),
    ("en", "What is a REST API, in simple terms?"),
    ("en", "How do I boil an egg so the yolk stays soft?"),
    ("en", "What's the difference between weather and climate?"),
    ("en", "Explain what a VPN does like I'm 10."),
    ("en", "What is compound interest?"),
    ("en", "How does a microwave heat food?"),
    ("en", "What is the difference between RAM and storage?"),
    ("es", "¿Por qué las hojas cambian de color en otoño?"),
    ("es", "¿Qué es una hipoteca variable?"),
    ("de", "Was ist der Unterschied zwischen Brutto und Netto?"),
    ("de", "Warum ist das Meer salzig?"),
    ("fr", "Pourquoi le ciel est-il rouge au coucher du soleil ?"),
    ("fr", "C'est quoi un tableur ?"),
    ("zh", "为什么天空是蓝色的？"),
    ("zh", "什么是通货膨胀？简单解释一下。"),
    ("ja", "なぜ空は青いのですか？"),
    ("ja", "クラウドストレージとは何ですか？"),
    ("ru", "Почему небо голубое?"),
    ("ru", "Что такое облачное хранилище?"),
])

# Small arithmetic and conversions.
single("arith-simple", "simple", [
    ("en", "What's 15% of 80?"),
    ("en", "Convert 72 degrees Fahrenheit to Celsius."),
    ("en", "If dinner was $86 and I want to tip 18%, how much is the tip?"),
    ("en", "What is 1234 * 56?"),
    ("es", "¿Cuánto es 3/4 más 2/3?"),
    ("de", "Wie viele Minuten sind 3,5 Stunden?"),
    ("fr", "Combien font 12 x 17 ?"),
    ("zh", "100美元大约是多少人民币？按7.2的汇率算。"),
    ("ja", "5キロは何マイルですか？"),
    ("ru", "Сколько будет 2^10?"),
])

# Translation, including text that sounds hard.
single("translate-simple", "simple", [
    ("en", "Translate to Spanish: 'Prove it, or admit you were wrong.'"),
    ("en", "Translate into German: 'The system design review is moved to Friday at 3 pm.'"),
    ("en", "How do you say 'I would like a table for two' in French?"),
    ("en", "Translate this to Japanese: 'Thank you for your help with the algorithm analysis.'"),
    ("es", "Traduce al inglés: «Demuestra que la raíz de dos es irracional» es el ejercicio 3."),
    ("de", "Übersetze ins Englische: Warum funktioniert der Algorithmus nicht bei negativen Zahlen?"),
    ("fr", "Traduis en anglais : « Analysez les avantages et les inconvénients de cette architecture. »"),
    ("zh", "把这句话翻译成英文：请证明这个定理，并分析它的时间复杂度。"),
    ("ja", "次の文を英語に訳してください：「このシステムの設計について詳しく説明してください。」"),
    ("ru", "Переведи на английский: «Докажи, что алгоритм корректен, и оцени его сложность»."),
    ("en", "what's 'deadlock' in Chinese?"),
    ("pt", "Traduza para o inglês: 'Preciso de ajuda para projetar a arquitetura do sistema.'"),
])

# Short writing tasks.
single("write-simple", "simple", [
    ("en", "Write a two-line birthday message for my colleague Sam."),
    ("en", "Write a polite email telling a client the meeting moves from Tuesday to Wednesday, same time."),
    ("en", "Suggest five names for a bakery that sells sourdough."),
    ("en", "Write a haiku about autumn rain."),
    ("en", "Give me a catchy tagline for a reusable water bottle."),
    ("en", "Draft a short out-of-office reply, back on Monday the 24th."),
    ("es", "Escribe un mensaje corto para felicitar a mi hermana por su nuevo trabajo."),
    ("de", "Schreib eine kurze Absage für eine Party am Samstag, freundlich."),
    ("fr", "Écris un petit mot de remerciement pour ma voisine qui a gardé mon chat."),
    ("zh", "帮我写一条生日祝福，发给我的大学同学。"),
    ("ja", "同僚への簡単なお礼のメッセージを書いてください。"),
    ("ru", "Напиши короткое поздравление с Новым годом для коллег."),
    ("en", "Make this sound more professional: 'hey, can't make it today, sorry, stuff came up'"),
    ("en", "Shorten this to under 20 words: 'We are writing to let you know that due to unforeseen circumstances the office will be closed on Friday and will reopen on Monday at the usual time.'"),
])

# Greetings, thanks and small talk.
single("chat-simple", "simple", [
    ("en", "hi!"),
    ("en", "Good morning, how are you today?"),
    ("en", "thanks, that's all I needed"),
    ("en", "Tell me a joke about cats."),
    ("es", "¡Hola! ¿Qué tal?"),
    ("de", "Danke dir, schönen Abend noch!"),
    ("fr", "Bonjour ! Tu peux m'aider ?"),
    ("zh", "你好，在吗？"),
    ("ja", "こんにちは！"),
    ("ru", "Привет! Как дела?"),
])

# Code-looking but trivial.
single("code-trivial", "simple", [
    ("en", 'Reformat this JSON with 2-space indentation:\n{"id":17,"name":"Ada","tags":["admin","ops"],"address":{"city":"Leeds","zip":"LS1"}}'),
    ("en", "Fix the typo in this snippet:\n```python\ndef greet(name):\n    pritn(f\"Hello, {name}!\")\n```"),
    ("en", "Rename the variable `x` to `total_price` in this code:\n```js\nlet x = 0;\nfor (const item of cart) {\n  x += item.price * item.qty;\n}\nconsole.log(x);\n```"),
    ("en", "Convert this to YAML:\n```json\n{\"server\": {\"port\": 8080, \"host\": \"0.0.0.0\"}, \"debug\": false, \"workers\": 4}\n```"),
    ("en", "Sort these imports alphabetically:\n```python\nimport sys\nimport os\nimport json\nimport argparse\nfrom pathlib import Path\n```"),
    ("en", "What does `ls -la` do?"),
    ("en", "Write a regex that matches a 5-digit US zip code."),
    ("en", "What does this error mean? `ModuleNotFoundError: No module named 'requests'`"),
    ("en", "Turn this list into a markdown table with columns Name and Age:\n- Alice, 31\n- Bob, 27\n- Carmen, 45"),
    ("en", "Add a docstring to this function:\n```python\ndef area(r):\n    return 3.14159 * r * r\n```"),
    ("en", "Change this SQL to order by created_at descending:\n```sql\nSELECT id, email FROM users WHERE active = 1 ORDER BY created_at;\n```"),
    ("en", "Convert this for loop to a list comprehension:\n```python\nsquares = []\nfor n in range(10):\n    squares.append(n * n)\n```"),
    ("en", "Format this LaTeX so it displays on its own line: $\\int_0^1 x^2\\,dx = \\frac{1}{3}$"),
    ("en", "Fix the indentation:\n```python\nif ready:\nprint('go')\n  else:\n    print('wait')\n```"),
    ("en", "Write a SQL query that counts the rows in the orders table."),
    ("en", "How do I undo the last git commit but keep the changes?"),
    ("en", "Convert this CSV to JSON:\nname,qty\napple,3\npear,5"),
    ("es", "Corrige el error de sintaxis:\n```python\nfor i in range(10)\n    print(i)\n```"),
    ("es", "Convierte este objeto a YAML: {\"nombre\": \"Luis\", \"edad\": 30}"),
    ("de", "Wie benenne ich in Git einen Branch um?"),
    ("de", "Formatiere dieses JSON lesbar: {\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":null}}"),
    ("fr", "Corrige la faute de frappe : `consle.log('bonjour')`"),
    ("fr", "Comment afficher la version de Python dans le terminal ?"),
    ("zh", "把这段 JSON 格式化一下：{\"用户\":\"张三\",\"年龄\":28,\"城市\":\"上海\"}"),
    ("zh", "这行代码有个拼写错误，帮我改一下：`improt numpy as np`"),
    ("ja", "このJSONを整形してください：{\"名前\":\"田中\",\"年齢\":40}"),
    ("ja", "`git status` は何をするコマンドですか？"),
    ("ru", "Исправь опечатку: `pirnt('Привет')`"),
    ("ru", "Как в Linux посмотреть свободное место на диске?"),
    ("en", "Add type hints to this function:\n```python\ndef add(a, b):\n    return a + b\n```"),
])

# Long but simple: a pasted document with a simple question.
LONG_ASKS = {
    "en": [
        ("Classify the sentiment of this customer review as positive, negative or mixed. Answer with one word.\n\n{doc}", 0),
        ("{doc}\n\nWas this review positive or negative overall?", 1),
        ("Give this review a short title (max 8 words):\n\n{doc}", 0),
        ("Summarise this review in two sentences.\n\n{doc}", 0),
        ("Does the reviewer mention customer service? Yes or no.\n\n{doc}", 0),
        ("Translate the first paragraph of this review into French:\n\n{doc}", 0),
        ("How many stars (1-5) would you guess this reviewer gave?\n\n\"\"\"\n{doc}\n\"\"\"", 0),
    ],
    "es": [
        ("Clasifica el sentimiento de esta reseña (positivo, negativo o neutro):\n\n{doc}", 0),
        ("{doc}\n\n¿La reseña es positiva o negativa? Responde con una palabra.", 1),
        ("Resume esta reseña en una frase:\n\n{doc}", 0),
    ],
    "de": [
        ("Ist diese Bewertung positiv oder negativ? Antworte nur mit einem Wort.\n\n{doc}", 0),
        ("{doc}\n\nFasse die Bewertung in zwei Sätzen zusammen.", 1),
        ("Welche Nachteile nennt der Kunde? Stichpunkte reichen.\n\n{doc}", 0),
    ],
    "fr": [
        ("Classe cet avis : positif, négatif ou mitigé ?\n\n{doc}", 0),
        ("{doc}\n\nRésume cet avis en une phrase.", 1),
        ("Donne un titre à cet avis client :\n\n{doc}", 0),
    ],
    "zh": [
        ("判断下面这条评论的情感倾向（正面/负面/中性），只回答一个词：\n\n{doc}", 0),
        ("{doc}\n\n请用一句话总结这条评论。", 1),
        ("给这条评论起一个标题：\n\n{doc}", 0),
    ],
    "ja": [
        ("次のレビューはポジティブですか、ネガティブですか？一言で答えてください。\n\n{doc}", 0),
        ("{doc}\n\nこのレビューを二文で要約してください。", 1),
    ],
    "ru": [
        ("Определи тональность отзыва: положительный, отрицательный или смешанный.\n\n{doc}", 0),
        ("{doc}\n\nПерескажи отзыв в одном предложении.", 1),
        ("Какие недостатки упоминает покупатель? Перечисли кратко.\n\n{doc}", 0),
    ],
}
for lang, asks in LONG_ASKS.items():
    for i, (ask, _) in enumerate(asks):
        add("long-simple", "simple", lang, [user(ask.format(doc=review(lang, seed=100 + i)))])

for i, ask in enumerate([
    "Summarise this article in three bullet points:\n\n{doc}",
    "{doc}\n\nWhat date is the final vote expected? Just the answer.",
    "Extract every person or organisation mentioned in the article below as a JSON list.\n\n{doc}",
    "Give me a headline for this article.\n\n{doc}",
    "Is this article about transport, health or education?\n\n{doc}",
]):
    add("long-simple", "simple", "en", [user(ask.format(doc=compose(ARTICLE_EN, 200 + i, 5000)))])
for i, ask in enumerate([
    "Here is the transcript of our meeting. List the action items with their owners.\n\n{doc}",
    "{doc}\n\nWhen is the next meeting?",
    "Write the minutes of this meeting as short bullet points:\n\n{doc}",
]):
    add("long-simple", "simple", "en", [user(ask.format(doc=compose(MEETING_EN, 300 + i, 4000, joiner="\n", paragraph=14)))])
for i, ask in enumerate([
    "How many of these log lines are errors?\n\n```\n{doc}\n```",
    "```\n{doc}\n```\nWhich order ids returned a 500? Just list them.",
    "Convert these log lines to CSV with columns time, level, message:\n\n{doc}",
]):
    add("long-simple", "simple", "en", [user(ask.format(doc=logs(400 + i, 60)))])
for i, ask in enumerate([
    "What is the payment term in this contract?\n\n{doc}",
    "{doc}\n\nWhich country's law governs this agreement?",
    "List the numbered clauses of this contract that mention days, with the number of days.\n\n{doc}",
]):
    add("long-simple", "simple", "en", [user(ask.format(doc=compose(CONTRACT_EN, 500 + i, 2500, joiner="\n", paragraph=12)))])
add("long-simple", "simple", "en", [
    system("You are a helpful assistant."),
    user("Proofread this and fix only spelling mistakes, keep everything else:\n\n"
         + compose(ARTICLE_EN, 600, 3000).replace("council", "councel").replace("residents", "residnets")),
])
add("long-simple", "simple", "de", [user(
    "Übersetze diesen Text ins Englische:\n\n" + compose(REVIEW["de"], 601, 3000))])
add("long-simple", "simple", "zh", [user("把下面的内容翻译成英文：\n\n" + compose(REVIEW["zh"], 602, 1200, joiner=""))])

# Pipelines: the instruction lives in the system prompt; the user message is material.
TICKET_SYSTEM = (
    "You are a support-ticket router. Read the customer's message and reply with exactly one label "
    "from: billing, technical, account, shipping, other. Reply with the label only."
)
EXTRACT_SYSTEM = (
    "Extract the following fields from the user's text and return JSON with keys "
    "name, company, email, phone, request. Use null for missing fields. Output JSON only."
)
MODERATE_SYSTEM = "Decide whether the message breaks the community rules (spam, insults, personal data). Answer ALLOW or BLOCK."
for lang, text in [
    ("en", "Why was I charged twice this month?? I need an explanation and a refund, I've been a customer for 6 years."),
    ("en", "Your app crashes whenever I try to upload a photo larger than 10 MB. Can you analyse what's going on? I'm on Android 14."),
    ("es", "¿Por qué mi pedido 44812 todavía no ha llegado? Lo pedí hace dos semanas."),
    ("de", "Ich kann mich seit gestern nicht mehr einloggen, das Passwort-Reset funktioniert auch nicht. Warum?"),
    ("fr", "Bonjour, je voudrais comprendre pourquoi ma facture a augmenté de 20 % ce mois-ci."),
    ("zh", "为什么我的账户被冻结了？请详细分析原因并尽快处理。"),
    ("ja", "注文した商品がまだ届きません。なぜでしょうか？"),
    ("ru", "Почему с меня списали деньги дважды? Разберитесь, пожалуйста."),
]:
    add("pipeline-simple", "simple", lang, [system(TICKET_SYSTEM), user(text)])
for lang, text in [
    ("en", "Hi, I'm Priya Nair from Lumen Analytics (priya.nair@lumen.example, +44 20 7946 0018). We'd like a quote for designing a scalable data platform that proves our compliance with SOC 2."),
    ("en", "hello this is tom, no company, tom@example.org. i need someone to analyse the trade-offs of our cloud architecture and prove it can handle 10x traffic"),
    ("de", "Guten Tag, Jana Krüger, Krüger Bau GmbH, Tel. 030 1234567. Wir brauchen ein Angebot für die Wartung unserer Server."),
    ("fr", "Bonjour, je m'appelle Louis Martin (louis@martin.example). Je cherche une étude approfondie de la conception de notre architecture logicielle."),
    ("es", "Soy Carla Ruiz de Ruiz & Hijos, carla@ruizhijos.example. Necesitamos un análisis de nuestra infraestructura."),
]:
    add("pipeline-simple", "simple", lang, [system(EXTRACT_SYSTEM), user(text)], response_format={"type": "json_object"})
for lang, text in [
    ("en", "Can someone explain why the proof of the four colour theorem needed a computer? Genuinely curious."),
    ("en", "BUY CHEAP WATCHES www.example.biz best price!!!"),
    ("ru", "Докажите, что вы не боты, и ответьте, почему модераторы удаляют мои посты."),
]:
    add("pipeline-simple", "simple", lang, [system(MODERATE_SYSTEM), user(text)])

# Tool-carrying agents with simple asks.
for lang, text in [
    ("en", "What's the weather in Lisbon right now?"),
    ("en", "Remind me to call the dentist tomorrow at 9."),
    ("en", "Send an email to maria@northwind.example saying I'll be 10 minutes late."),
    ("en", "List my open tickets."),
    ("en", "Book room Orion tomorrow 2-3pm."),
    ("en", "What's AAPL trading at?"),
    ("en", "Convert 250 euros to dollars."),
    ("en", "Do I have any unread emails?"),
    ("en", "What's on my calendar on Monday?"),
    ("en", "Look up the order 88213 for me."),
    ("es", "¿Qué tiempo hace en Sevilla?"),
    ("de", "Erstelle einen Termin morgen um 10 Uhr: Zahnarzt."),
    ("fr", "Quelle est la météo à Lyon demain ?"),
    ("zh", "帮我查一下订单 55120 的状态。"),
    ("ja", "明日の午後3時にリマインダーを設定して：資料を送る"),
    ("ru", "Какая погода в Казани?"),
]:
    add("agent-simple", "simple", lang, [system(AGENT_SYSTEM), user(text)], tools=TOOLS, tool_choice="auto")
# ...and agents mid-loop: the last message is a tool result.
for lang, ask, call, result in [
    ("en", "What's the weather in Oslo?", ("get_weather", '{"city": "Oslo"}'), '{"temp_c": -3, "conditions": "light snow"}'),
    ("en", "Refund order 1204, the customer got the wrong size.", ("refund_order", '{"order_id": "1204", "reason": "wrong size"}'), '{"status": "refunded", "amount": 49.9}'),
    ("de", "Wie viel kostet gerade eine Aktie von SAP?", ("get_stock_price", '{"ticker": "SAP"}'), '{"price": 171.32, "currency": "EUR"}'),
    ("zh", "现在美元兑日元汇率是多少？", ("get_exchange_rates", '{"base": "USD"}'), '{"JPY": 148.2, "EUR": 0.92}'),
    ("es", "Cierra el ticket T-311, ya está resuelto.", ("update_ticket", '{"ticket_id": "T-311", "status": "closed"}'), '{"ok": true}'),
]:
    add("agent-simple", "simple", lang, [
        system(AGENT_SYSTEM),
        user(ask),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": call[0], "arguments": call[1]}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ], tools=TOOLS)

# Multi-turn, simple throughout (or a simple turn after a hard one).
add("multi-simple", "simple", "en", [
    user("Write a short thank-you note for my team after the product launch."),
    assistant("Team — thank you for the late nights and the care you put into this launch. We shipped something we can all be proud of. Drinks on me Friday!"),
    user("make it a bit shorter"),
])
add("multi-simple", "simple", "en", [
    user("What's a good name for a golden retriever puppy?"),
    assistant("Some ideas: Sunny, Maple, Biscuit, Honey, Archie, Goldie."),
    user("more like those please"),
])
add("multi-simple", "simple", "en", [
    user("What's the capital of Peru?"),
    assistant("Lima."),
    user("and of Chile?"),
])
add("multi-simple", "simple", "es", [
    user("Escríbeme un mensaje para invitar a mis amigos a una barbacoa el sábado."),
    assistant("¡Hola a todos! Este sábado hacemos barbacoa en casa a partir de las 13:00. ¡Traed bebida y buen humor!"),
    user("¿Puedes añadir que traigan bañador?"),
])
add("multi-simple", "simple", "de", [
    user("Wie spät ist es in Tokio, wenn es in Berlin 9 Uhr ist?"),
    assistant("Im Winter ist es in Tokio dann 17 Uhr (Berlin MEZ, Tokio JST, 8 Stunden Unterschied)."),
    user("Und im Sommer?"),
])
add("multi-simple", "simple", "fr", [
    user("Donne-moi une recette simple de crêpes."),
    assistant("250 g de farine, 4 œufs, 50 cl de lait, une pincée de sel, 50 g de beurre fondu. Mélangez, laissez reposer 1 h, faites cuire à la poêle."),
    user("Merci ! Et pour 8 personnes ?"),
])
add("multi-simple", "simple", "zh", [
    user("推荐几本适合初学者的英语小说。"),
    assistant("可以试试《小王子》英文版、《夏洛的网》、《老人与海》，语言都比较简单。"),
    user("还有别的吗？"),
])
add("multi-simple", "simple", "ja", [
    user("週末に東京でおすすめの公園はありますか？"),
    assistant("代々木公園、新宿御苑、井の頭公園などがおすすめです。"),
    user("ありがとう！"),
])
add("multi-simple", "simple", "ru", [
    user("Посоветуй фильм на вечер, что-нибудь лёгкое."),
    assistant("Попробуйте «Амели» или «Отель „Гранд Будапешт“»."),
    user("Спасибо, а что-нибудь из советских комедий?"),
])
# A simple ask after a hard conversation: thanks, or a transformation of the answer.
HARD_TURN = [
    user("Prove that there are infinitely many primes of the form 4k+3."),
    assistant(
        "Suppose there are finitely many, p1, ..., pn. Let N = 4·p1···pn − 1. N ≡ 3 (mod 4), so N has a prime "
        "factor q ≡ 3 (mod 4) (a product of primes ≡ 1 (mod 4) is ≡ 1). q cannot be any pi, since pi divides "
        "N + 1. Contradiction, so there are infinitely many."
    ),
]
add("multi-simple", "simple", "en", [*HARD_TURN, user("thanks, that's perfect!")])
add("multi-simple", "simple", "en", [*HARD_TURN, user("Translate your answer into Spanish.")])
add("multi-simple", "simple", "en", [*HARD_TURN, user("Can you format that as a LaTeX document?")])
add("multi-simple", "simple", "de", [*HARD_TURN, user("Danke, das hilft mir sehr!")])
add("multi-simple", "simple", "en", [
    user("Design a rate limiter for a multi-region API gateway handling 2M requests per second. Discuss consistency between regions."),
    assistant("A two-level design: local token buckets per gateway node, refilled from a regional budget... (design continues)"),
    user("ok cool. unrelated, what's the capital of Mongolia?"),
])

# ================================================================ hard

# Short but hard: one-line proofs and questions that need real reasoning.
single("short-hard", "hard", [
    ("en", "Prove that √2 is irrational."),
    ("en", "Show that every tree with n vertices has exactly n−1 edges."),
    ("en", "Prove there is no largest prime."),
    ("en", "Prove that the sum of the first n odd numbers is n²."),
    ("en", "Is there a continuous f: ℝ → ℝ with f(f(x)) = −x for all x?"),
    ("en", "Show that any 2-coloring of K6 has a monochromatic triangle."),
    ("en", "Why does Dijkstra's algorithm fail with negative edge weights? Give a minimal counterexample."),
    ("en", "Can a linearizable register be built on an asynchronous network with crash failures and a minority of nodes down? Justify."),
    ("en", "Prove or disprove: if A² = 0 for a square matrix A then I + A is invertible."),
    ("en", "What's the expected number of fair coin flips until you see HTH? Derive it."),
    ("en", "Is P ⊆ PSPACE? Sketch why."),
    ("en", "Prove that a bipartite graph has no odd cycle."),
    ("en", "Show that ∑_{k=1}^{n} k³ = (n(n+1)/2)²."),
    ("en", "How many ways can a 2×n board be tiled with dominoes? Prove your formula."),
    ("es", "Demuestra que hay infinitos números primos."),
    ("es", "¿Por qué el problema de la parada es indecidible? Da la demostración por diagonalización."),
    ("es", "Demuestra que toda función continua en [a,b] alcanza un máximo."),
    ("de", "Beweise, dass jede natürliche Zahl > 1 eine Primfaktorzerlegung besitzt."),
    ("de", "Zeige, dass die harmonische Reihe divergiert."),
    ("de", "Warum ist das Rucksackproblem NP-schwer, obwohl es einen pseudopolynomiellen Algorithmus gibt?"),
    ("fr", "Démontrez que √3 est irrationnel."),
    ("fr", "Montrez que toute suite réelle bornée admet une sous-suite convergente."),
    ("fr", "Pourquoi le théorème CAP n'interdit-il pas une base de données à la fois cohérente et disponible en l'absence de partition ?"),
    ("zh", "证明：任意n个整数中，必有若干个数之和能被n整除。"),
    ("zh", "证明√5是无理数。"),
    ("zh", "为什么快速排序的平均时间复杂度是O(n log n)？请严格推导。"),
    ("ja", "素数が無限に存在することを証明してください。"),
    ("ja", "任意の平面グラフが5色で彩色可能であることを示せ。"),
    ("ru", "Докажи, что простых чисел бесконечно много."),
    ("ru", "Докажи, что в любом графе число вершин нечётной степени чётно."),
    ("ru", "Почему алгоритм Беллмана–Форда находит отрицательный цикл? Докажи корректность."),
    ("pt", "Prove que a soma dos ângulos internos de um triângulo é 180 graus, usando o postulado das paralelas."),
    ("it", "Dimostra che esistono infiniti numeri primi della forma 6k+5."),
    ("ko", "√2가 무리수임을 증명하시오."),
])

# Math and quantitative reasoning without the word "prove".
single("math-hard", "hard", [
    ("en", "Evaluate ∫_0^∞ x² e^{−x²} dx."),
    ("en", "Find all real solutions of x^4 − 5x^2 + 4 = 0 and explain each step."),
    ("en", "A bag has 3 red and 5 blue balls. I draw 4 without replacement. What's the probability of exactly 2 red? Then, given that at least one is red, what's the probability all 3 reds were drawn?"),
    ("en", "Compute the eigenvalues and eigenvectors of [[2,1],[1,2]] and diagonalise it."),
    ("en", "Solve the recurrence T(n) = 2T(n/2) + n log n."),
    ("en", "How many integers between 1 and 10,000 are divisible by neither 6 nor 10 nor 15?"),
    ("en", "Find lim_{x→0} (sin x − x)/x³ without L'Hôpital."),
    ("en", "We A/B tested a checkout change: control 1,204 conversions of 25,310; variant 1,311 of 25,102. Is the lift significant at 5%? What sample size would detect a 0.3 pp lift with 80% power?"),
    ("es", "Calcula la integral de x·ln(x) entre 1 y e, paso a paso."),
    ("es", "¿Cuál es la probabilidad de que en un grupo de 30 personas dos cumplan años el mismo día? Explica el cálculo."),
    ("de", "Bestimme alle Lösungen der Differentialgleichung y'' + 4y = sin(2x)."),
    ("de", "Wie viele Möglichkeiten gibt es, 10 identische Kugeln auf 4 unterscheidbare Urnen zu verteilen, sodass keine leer bleibt?"),
    ("fr", "Résoudre l'équation différentielle y' + 2xy = x, en détaillant les étapes."),
    ("fr", "Calculer la somme de la série ∑ 1/(n(n+1)(n+2))."),
    ("zh", "求极限：lim(n→∞) (1 + 1/n)^(n²) / e^n。"),
    ("zh", "一个袋子里有5个红球和3个白球，不放回地依次取球，求第三次取到红球的概率，并说明理由。"),
    ("ja", "行列A=[[4,1],[2,3]]の固有値と固有ベクトルを求め、A^10を計算せよ。"),
    ("ru", "Найди все целые решения уравнения x² − 2y² = 1 и объясни, почему их бесконечно много."),
    ("ru", "Вычисли ∫ dx/(1 + x⁴)."),
])

# System design, short and long.
single("design-hard", "hard", [
    ("en", "Design a URL shortener that handles 100k writes/s and 1M reads/s across 3 regions. Cover ID generation, storage, caching and failure modes."),
    ("en", "How would you build exactly-once processing on top of Kafka for a payments ledger?"),
    ("en", "Should we shard our 50 TB event store by tenant or by time? Queries are mostly per tenant over the last 7 days, but there are monthly cross-tenant reports."),
    ("en", "Design a collaborative text editor backend. CRDT or OT, and why?"),
    ("en", "Architect a feature-flag service with sub-10ms evaluation, audit logs, and gradual rollouts for 300 microservices."),
    ("en", "We're moving a monolith's Postgres (4 TB, 20k TPS) to a sharded setup with zero downtime. Plan the migration."),
    ("en", "How would you design the leaderboard for a game with 50M daily players, updated in real time, top-100 global plus friends' ranks?"),
    ("en", "What consistency model would you pick for a shopping cart replicated across continents, and what anomalies will users see?"),
    ("en", "Design a distributed cron scheduler that never runs a job twice and tolerates the loss of any one data centre."),
    ("en", (
        "I need a plan for our observability stack.\n"
        "- 400 services, mostly Go and Java\n- 2 TB of logs/day, 15M active metric series\n"
        "- budget: $40k/month\n- on-call wants traces linked to logs\n"
        "What would you build, what would you buy, and where are the risks?"
    )),
    ("es", "Diseña un sistema de notificaciones push para 20 millones de usuarios con entregas garantizadas y prioridades."),
    ("es", "¿Cómo diseñarías un sistema de reservas de vuelos que evite la sobreventa con réplicas en dos continentes?"),
    ("de", "Entwirf eine Architektur für ein Zahlungssystem mit idempotenten APIs, doppelter Buchführung und Abgleich mit der Bank."),
    ("de", "Wie würdest du einen global verteilten Rate-Limiter bauen, der auch bei Netzwerkpartitionen fair bleibt?"),
    ("fr", "Conçois l'architecture d'un moteur de recherche interne pour 10 millions de documents avec mise à jour en quasi temps réel."),
    ("fr", "Comment concevoir un système de messagerie chiffrée de bout en bout avec synchronisation multi-appareils ?"),
    ("zh", "设计一个支持千万级用户的秒杀系统，说明如何防止超卖、如何削峰，以及各部分的权衡。"),
    ("zh", "如何设计一个跨地域多活的分布式数据库？请讨论一致性和延迟之间的取舍。"),
    ("ja", "1日1億件のイベントを処理するリアルタイム分析基盤を設計してください。遅延、コスト、障害時の挙動を考慮して。"),
    ("ja", "マイクロサービス間の分散トランザクションをどう設計しますか？Sagaと2PCの違いも含めて。"),
    ("ru", "Спроектируй систему хранения логов на 5 ТБ в день с поиском за секунды и сроком хранения 90 дней."),
    ("ru", "Как бы вы построили отказоустойчивую очередь задач с гарантией доставки ровно один раз?"),
])

# Algorithms and non-trivial implementation.
single("code-hard", "hard", [
    ("en", "Implement a lock-free multi-producer multi-consumer queue in C++ and explain why it is linearizable."),
    ("en", "Write an O(n log n) algorithm for the longest increasing subsequence and prove it correct."),
    ("en", "Give an algorithm to find the k-th smallest element in the union of two sorted arrays in O(log k)."),
    ("en", "Implement Raft leader election in Go, including randomized timeouts and term handling."),
    ("en", "Write a Pratt parser for arithmetic expressions with unary minus, exponentiation (right-assoc) and function calls."),
    ("en", "Given a stream of 10^9 integers and 1 MB of memory, how do you estimate the number of distinct values, with what error?"),
    ("en", "Find the minimum number of jumps to reach the end of an array where a[i] is the max jump, in O(n), and argue optimality."),
    ("en", "Write a rate limiter in Python that is safe across asyncio tasks and multiple processes sharing Redis, with a sliding window."),
    ("en", "Implement an LRU cache with O(1) get/put that is safe for concurrent use in Java, and explain the locking."),
    ("en", "Write a function that checks whether a regex (with . * + ? and groups) matches a string, without using the re module."),
    ("es", "Implementa un algoritmo para detectar ciclos en un grafo dirigido con millones de nodos y explica su complejidad."),
    ("de", "Schreibe einen Algorithmus, der in O(n) das längste Palindrom in einem String findet (Manacher), und erkläre warum er linear ist."),
    ("fr", "Implémente un B-tree en Rust avec insertion et suppression, et explique comment tu gères la fusion des nœuds."),
    ("zh", "实现一个支持并发的跳表（skip list），并分析插入和查找的时间复杂度。"),
    ("ja", "ダイクストラ法を優先度付きキューで実装し、計算量を証明してください。"),
    ("ru", "Напиши алгоритм поиска максимального потока (Диниц) и оцени его сложность."),
])

# Hard debugging with pasted code.
single("debug-hard", "hard", [
    ("en", (
        "This sometimes deadlocks under load. Why?\n```go\nfunc (s *Store) Transfer(a, b *Account, n int) {\n"
        "    a.mu.Lock()\n    defer a.mu.Unlock()\n    b.mu.Lock()\n    defer b.mu.Unlock()\n"
        "    a.bal -= n\n    b.bal += n\n}\n```"
    )),
    ("en", (
        "Our counter is sometimes off by a few after a burst of requests:\n```python\nasync def hit(key):\n"
        "    value = await redis.get(key)\n    await redis.set(key, int(value or 0) + 1)\n```\nWhat's going on and how do I fix it without a lock?"
    )),
    ("en", (
        "p99 latency of our Java service jumps from 40 ms to 900 ms every ~30 s, only in eu-west. GC logs look fine, "
        "CPU is at 35%. The service calls Postgres through PgBouncer and Redis. Where would you look, in what order?"
    )),
    ("en", (
        "This C code works at -O0 but prints garbage at -O2. Why?\n```c\nint *f(void) {\n    int x = 42;\n    return &x;\n}\n"
        "int main(void) {\n    int *p = f();\n    printf(\"%d\\n\", *p);\n}\n```\nAlso explain what the compiler is allowed to do here."
    )),
    ("en", (
        "After we enabled HTTP keep-alive between our proxy and the backend, about 1 in 10,000 POSTs is executed twice. "
        "Nothing in our code retries. What could cause this?"
    )),
    ("en", (
        "Memory of our Node.js service grows by 200 MB a day until it's OOM-killed. Heap snapshots show lots of "
        "closures retained by an EventEmitter. Walk me through finding the leak."
    )),
    ("en", (
        "Why does this Rust code not compile, and what's the idiomatic fix?\n```rust\nfn longest(v: &Vec<String>) -> &str {\n"
        "    let mut best = String::new();\n    for s in v { if s.len() > best.len() { best = s.clone(); } }\n    &best\n}\n```\nExplain the lifetime issue precisely."
    )),
    ("es", "Nuestro clúster de Kafka pierde mensajes cuando un broker se reinicia, aunque usamos acks=all. ¿Qué configuración puede explicarlo?"),
    ("de", "Unser Kubernetes-Pod wird sporadisch mit OOMKilled beendet, obwohl der Heap nur 60% des Limits nutzt. Woran kann das liegen?"),
    ("fr", "Notre base Postgres a des pics de latence toutes les 5 minutes, alignés avec les checkpoints. Comment diagnostiquer et corriger ?"),
    ("zh", "我们的分布式锁基于Redis的SETNX实现，但偶尔会出现两个进程同时持有锁的情况，为什么？怎么修复？"),
    ("ja", "このPythonのマルチスレッドコードで、なぜ結果が毎回変わるのか説明してください。\n```python\ncount = 0\ndef work():\n    global count\n    for _ in range(100000):\n        count += 1\n```"),
    ("ru", "Почему в нашем сервисе на Go растёт количество горутин, если клиент закрывает соединение раньше ответа? Как найти утечку?"),
])

# Analysis that weighs trade-offs, outside code.
single("analysis-hard", "hard", [
    ("en", "Compare the trade-offs of a VAT increase versus an income-tax increase for reducing a 3% budget deficit in a small open economy."),
    ("en", "A 58-year-old with chest pain on exertion, normal ECG at rest and a family history of early MI: what's the differential and the next diagnostic step? Explain your reasoning."),
    ("en", "Evaluate whether a SaaS startup at $2M ARR growing 8% month-over-month should raise a Series A now or wait 6 months. Lay out the scenarios."),
    ("en", "What are the strongest arguments for and against the claim that LLM scaling laws will plateau before 2030? Weigh the evidence."),
    ("en", "Critique this research design: we compare user retention between customers who opted into our new feature and those who did not, and attribute the difference to the feature."),
    ("en", "Our enterprise deal is stuck: legal wants unlimited liability, we cap at 12 months of fees. What negotiation options do we have and what are the risks of each?"),
    ("es", "Analiza las ventajas y desventajas de adoptar una semana laboral de cuatro días en una empresa de logística de 500 empleados."),
    ("de", "Wäge ab: Sollte eine mittelgroße Stadt ihr Fernwärmenetz ausbauen oder auf Wärmepumpen in Einzelhäusern setzen? Berücksichtige Kosten, Emissionen und Risiken."),
    ("fr", "Analysez les conséquences juridiques d'une clause de non-concurrence sans contrepartie financière en droit du travail français."),
    ("zh", "请分析一家传统制造企业进行数字化转型的主要风险，并给出分阶段的实施策略。"),
    ("ja", "円安が日本の中小製造業に与える影響を、輸出企業と輸入依存企業に分けて分析してください。"),
    ("ru", "Проанализируй плюсы и минусы перехода компании с монолита на микросервисы при команде из 12 разработчиков."),
])

# Long and hard: a long document with an ask that needs real work.
PROOF_DOC = (
    "Claim: every connected graph with n vertices and n edges contains exactly one cycle.\n\n"
    "Proof. We use induction on n. For n = 3 the only connected graph with 3 edges is a triangle, which has one cycle. "
    "Assume the claim for n. Take a connected graph G with n+1 vertices and n+1 edges. Since the sum of degrees is 2(n+1), "
    "some vertex v has degree 1. Removing v and its edge gives a connected graph with n vertices and n edges, which by "
    "hypothesis has exactly one cycle; v lies on no cycle, so G has exactly one cycle. ∎"
)
single("long-hard", "hard", [
    ("en", f"Find the flaw in this proof and fix it if the claim is true.\n\n{PROOF_DOC}"),
    ("en", "Here are our service logs from the incident. Figure out the root cause of the 500s and the sequence of events that led to them.\n\n```\n" + logs(700, 80) + "\n```"),
    ("en", "Review this contract from the Buyer's side. Which clauses expose us to the most risk if the Supplier goes bankrupt mid-delivery, and how should we redraft them?\n\n" + compose(CONTRACT_EN, 701, 2500, joiner="\n", paragraph=12)),
    ("en", (
        "Below is our current design for the order service. Identify the failure modes under a network partition between the two regions "
        "and propose changes that keep orders consistent.\n\n"
        "Orders are written to the primary Postgres in us-east; eu-west reads from an async replica. The checkout service in each region "
        "reserves stock in its local Redis, then writes the order to the primary. If the write fails, it retries three times with backoff. "
        "Inventory is reconciled nightly from the warehouse system. Payment is captured after the order row is committed. "
        "Each region's checkout can fail over to the other region's database endpoint via DNS with a 60 s TTL. "
        "We have seen duplicate orders twice this quarter and one case of negative stock."
    )),
    ("en", (
        "```python\nclass Pool:\n    def __init__(self, size):\n        self.free = list(range(size))\n        self.cv = threading.Condition()\n\n"
        "    def acquire(self, timeout=None):\n        with self.cv:\n            if not self.free:\n                self.cv.wait(timeout)\n"
        "            return self.free.pop()\n\n    def release(self, item):\n        with self.cv:\n            self.free.append(item)\n"
        "            self.cv.notify()\n```\nUnder load we get IndexError: pop from empty list. Explain every way this can happen and give a correct version."
    )),
    ("de", "Hier ist der Beweis aus meiner Übung. Ist er korrekt? Wenn nicht, wo genau liegt der Fehler?\n\n"
        "Behauptung: Jede beschränkte monotone Folge konvergiert.\nBeweis: Sei (a_n) monoton wachsend und beschränkt. Dann gilt a_n ≤ a_{n+1} ≤ M. "
        "Also ist a_{n+1} − a_n → 0, und daher ist (a_n) eine Cauchy-Folge, also konvergent. ∎"),
    ("zh", "下面是我们的数据库表结构和慢查询，请分析为什么在数据量达到五千万行后查询变慢，并给出索引和查询改写方案，说明取舍。\n\n"
        "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT, status VARCHAR(16), created_at DATETIME, amount DECIMAL(10,2));\n"
        "CREATE INDEX idx_user ON orders(user_id);\n\n"
        "SELECT status, COUNT(*), SUM(amount) FROM orders WHERE created_at >= '2025-01-01' AND user_id IN (SELECT user_id FROM vip_users) GROUP BY status ORDER BY 3 DESC;"),
    ("es", "Este es el resumen de nuestra arquitectura actual. ¿Qué pasará cuando multipliquemos el tráfico por 10? Identifica los cuellos de botella y propón una estrategia de escalado con sus compromisos.\n\n"
        "Tenemos un monolito en Django sobre una sola instancia de PostgreSQL (16 vCPU, 64 GB). Las imágenes se guardan en disco local y se sirven con Nginx. "
        "Las tareas en segundo plano usan Celery con Redis. Hay 3 servidores de aplicación detrás de un balanceador. El tráfico pico es de 800 peticiones por segundo."),
])

# Multi-turn where the hard part is earlier.
FOLLOWUPS: list[tuple[str, list[Msg], str]] = [
    ("en", HARD_TURN, "and why does that argument fail for primes of the form 4k+1?"),
    ("en", HARD_TURN, "why?"),
    ("en", HARD_TURN, "I don't get the step where q must be 3 mod 4"),
    ("en", [
        user("Design a rate limiter for a multi-region API gateway handling 2M requests per second. Discuss consistency between regions."),
        assistant("A two-level design: local token buckets per gateway node, refilled from a regional budget that is reconciled across regions every 100 ms via a CRDT counter... (design continues)"),
    ], "what happens during a partition?"),
    ("en", [
        user("Give an O(n) algorithm for the maximum subarray sum."),
        assistant("Kadane's algorithm: keep best_ending_here = max(x, best_ending_here + x) and best = max(best, best_ending_here)."),
    ], "now prove it's correct"),
    ("en", [
        user("Give an O(n) algorithm for the maximum subarray sum."),
        assistant("Kadane's algorithm: keep best_ending_here = max(x, best_ending_here + x) and best = max(best, best_ending_here)."),
    ], "what about the 2D version?"),
    ("en", [
        user("Why does this deadlock?\n```go\na.mu.Lock(); b.mu.Lock()\n```\n(two goroutines transfer money in opposite directions)"),
        assistant("Two goroutines take the locks in opposite orders: one holds a and waits for b, the other holds b and waits for a."),
    ], "ok, and how do I fix it without a global lock?"),
    ("en", [
        user("Evaluate ∫_0^∞ sin(x)/x dx."),
        assistant("It equals π/2. One way: consider I(a) = ∫_0^∞ e^{−ax} sin(x)/x dx, differentiate under the integral sign..."),
    ], "can you do it with contour integration instead?"),
    ("en", [
        system("You are a senior staff engineer."),
        user("We have 40 microservices sharing one Postgres. Should we split the database per service?"),
        assistant("Not all at once. Start with the services whose tables are only touched by them... (analysis continues)"),
    ], "what would you do first?"),
    ("en", [
        user("Is the halting problem decidable for programs with bounded memory?"),
        assistant("Yes in principle: a program with bounded memory has finitely many states, so it either halts or repeats a state..."),
    ], "and in practice?"),
    ("es", [
        user("Demuestra que hay infinitos primos."),
        assistant("Supongamos que hay un número finito p1,...,pn. Entonces N = p1·...·pn + 1 no es divisible por ninguno..."),
    ], "¿y por qué?"),
    ("es", [
        user("Diseña un sistema de colas que garantice el orden por cliente con 50.000 mensajes por segundo."),
        assistant("Particionamos por id de cliente en un log distribuido; cada partición tiene un único consumidor activo..."),
    ], "¿Qué pasa si un consumidor se cae a mitad de un lote?"),
    ("de", [
        user("Beweise, dass die harmonische Reihe divergiert."),
        assistant("Fasse die Glieder in Blöcke zusammen: 1/3+1/4 ≥ 1/2, 1/5+...+1/8 ≥ 1/2, usw. Also ist die Summe unbeschränkt."),
    ], "Und warum konvergiert dann ∑ 1/n²?"),
    ("de", [
        user("Wie würdest du einen global verteilten Rate-Limiter bauen?"),
        assistant("Lokale Token-Buckets pro Knoten, die regelmäßig mit einem regionalen Budget abgeglichen werden..."),
    ], "warum nicht einfach Redis zentral?"),
    ("fr", [
        user("Démontrez que √3 est irrationnel."),
        assistant("Supposons √3 = p/q irréductible. Alors p² = 3q², donc 3 divise p..."),
    ], "pourquoi 3 divise p ?"),
    ("fr", [
        user("Conçois l'architecture d'un moteur de recherche interne pour 10 millions de documents."),
        assistant("Un index inversé partitionné par document, des répliques par partition, une file d'indexation..."),
    ], "Et comment gérer les mises à jour en quasi temps réel ?"),
    ("zh", [
        user("证明√5是无理数。"),
        assistant("假设√5 = p/q 且既约，则 p² = 5q²，所以5整除p……"),
    ], "为什么？"),
    ("zh", [
        user("设计一个支持千万级用户的秒杀系统。"),
        assistant("核心思路：请求在网关层限流，库存预扣放在Redis，用消息队列异步下单……"),
    ], "如果Redis挂了怎么办？"),
    ("ja", [
        user("素数が無限に存在することを証明してください。"),
        assistant("有限個しかないと仮定し、それらをすべて掛けて1を足した数Nを考えます……"),
    ], "なぜNは新しい素因数を持つのですか？"),
    ("ja", [
        user("マイクロサービス間の分散トランザクションをどう設計しますか？"),
        assistant("Sagaパターンで各サービスのローカルトランザクションと補償処理を組み合わせます……"),
    ], "補償処理が失敗したら？"),
    ("ru", [
        user("Докажи, что в любом графе число вершин нечётной степени чётно."),
        assistant("Сумма степеней всех вершин равна удвоенному числу рёбер, то есть чётна..."),
    ], "а почему из этого следует ответ?"),
    ("ru", [
        user("Спроектируй систему хранения логов на 5 ТБ в день."),
        assistant("Приём через Kafka, хранение в колоночном формате в объектном хранилище, индекс по времени и сервису..."),
    ], "а как сделать поиск быстрым?"),
    ("en", [
        user("Write an O(n log n) algorithm for the longest increasing subsequence."),
        assistant("Keep tails[k] = smallest tail of an increasing subsequence of length k+1; binary-search each x into tails..."),
        user("nice"),
        assistant("Glad it helps! Anything else?"),
    ], "yes — how do I reconstruct the actual subsequence, not just its length?"),
    ("en", [
        user("Our Kafka consumers lag only in eu-west. CPU is fine. Ideas?"),
        assistant("Check partition assignment skew, the consumer's fetch.min.bytes and max.poll.records, and cross-region broker placement..."),
    ], "we checked all that, still lagging"),
    ("en", [
        user("Prove that every bounded monotone sequence converges."),
        assistant("Let (a_n) be increasing and bounded above; let L = sup a_n. For ε > 0 there is N with a_N > L − ε..."),
    ], "what if it's only bounded, not monotone?"),
]
for lang, history, follow in FOLLOWUPS:
    add("multi-hard", "hard", lang, [*history, user(follow)])

# Tool-carrying agents with hard asks.
for lang, text in [
    ("en", "Our checkout error rate doubled since Tuesday. Use the logs and metrics to find the root cause, and tell me how confident you are."),
    ("en", "Analyse churn in the warehouse: compare 90-day retention of the Jan, Feb and Mar cohorts, work out which plan changes explain the difference, and propose two experiments."),
    ("en", "Plan the migration of our ticketing data from the old schema to the new one without downtime; check the tables first and list the risks."),
    ("en", "Figure out why the nightly ETL job got 3x slower this week — look at git history, query plans and the metrics."),
    ("en", "Review the last 20 commits for anything that could cause the memory leak we see in production, and explain your reasoning."),
    ("es", "Analiza las ventas del último trimestre por región y explica qué factores explican la caída en el norte; propón una estrategia."),
    ("de", "Untersuche, warum die Latenz des Zahlungsdienstes seit dem letzten Deployment gestiegen ist, und schlage eine Lösung vor."),
    ("fr", "Analyse les tickets du mois dernier, regroupe les causes profondes des incidents et propose un plan pour réduire leur nombre de moitié."),
    ("zh", "请结合日志和监控数据，分析昨晚服务宕机的根本原因，并给出改进方案。"),
    ("ja", "先週からAPIのエラー率が上がっている原因を、ログとメトリクスから調査して、対策を提案してください。"),
    ("ru", "Выясни по логам и метрикам, почему сервис заказов падает под нагрузкой, и предложи план исправления."),
]:
    add("agent-hard", "hard", lang, [system(AGENT_SYSTEM), user(text)], tools=TOOLS, tool_choice="auto")

# Hard asks behind a system prompt.
for lang, sys_text, text in [
    ("en", "You are a helpful assistant.", "A farmer has 100 m of fence and wants to enclose a rectangular field along a river (no fence on the river side) and split it into 3 equal pens with fences parallel to the river's perpendicular. What dimensions maximise the area? Show the optimisation."),
    ("en", "You are a math tutor for high-school students. Be encouraging.", "how do i show that n^3 - n is always divisible by 6"),
    ("en", "You are a coding assistant. Answer with code first, explanation after.", "Implement consistent hashing with virtual nodes in TypeScript and show how keys move when a node is added."),
    ("de", "Du bist ein hilfreicher Assistent.", "Warum ist Quicksort in der Praxis oft schneller als Mergesort, obwohl beide O(n log n) haben? Erkläre es mit Cache-Verhalten und Konstanten."),
    ("fr", "Tu es un assistant juridique.", "Un salarié licencié pour faute grave conteste le licenciement en invoquant une procédure irrégulière. Analyse ses chances et les arguments de chaque partie."),
    ("zh", "你是一名资深架构师。", "我们的订单系统要从单体拆分为微服务，请给出拆分边界的判断方法、数据一致性方案和迁移步骤。"),
]:
    add("system-hard", "hard", lang, [system(sys_text), user(text)])

# ================================================================ round 2
# Written after round 1's held-out quarter had been scored and the classifier frozen; these
# were labelled before the classifier ever saw them, and scored once (evaluate.py reports
# them apart). Same label rules as above.
ROUND = 2

single("short-hard", "hard", [
    ("en", "what's the time complexity of building a heap from an unsorted array, and why isn't it n log n?"),
    ("en", "Two threads increment a shared int 1M times each without locks in Java. What final values are possible and why?"),
    ("en", "Is it possible for a counting Bloom filter that supports deletes to produce false negatives? Explain the failure case."),
    ("en", "Given n points in the plane, find the closest pair in O(n log n). Explain the strip argument."),
    ("en", "Let X and Y be independent exponentials with rate 1. What's the distribution of X/(X+Y)?"),
    ("en", "Find all functions f: ℕ → ℕ such that f(m+n) = f(m) + f(n) + mn."),
    ("en", "Explain why the TCP three-way handshake needs three messages rather than two, considering delayed duplicate SYNs."),
    ("en", "What's wrong with double-checked locking in Java before Java 5, and why does volatile fix it?"),
    ("en", "Why is the halting problem undecidable?"),
    ("es", "Encuentra el error en este razonamiento: 1 = √1 = √((-1)(-1)) = √(-1)·√(-1) = i² = -1."),
    ("de", "Gegeben sei die Folge a_1 = 1, a_{n+1} = a_n + 1/a_n. Zeige, dass a_n → ∞, und schätze das Wachstum ab."),
    ("fr", "Soit G un groupe d'ordre 15. Montrer que G est cyclique."),
    ("zh", "给定一个长度为n的数组，如何在O(n)时间内找到第k大的元素？请说明期望复杂度的分析。"),
    ("ja", "3つのサイコロを振ったとき、出た目の最大値の期待値を求めてください。"),
    ("ru", "Объясни, почему задача о рюкзаке 0/1 решается динамикой за O(nW), но при этом NP-трудна."),
])
single("design-hard", "hard", [
    ("en", "Our Postgres replica falls hours behind during the nightly batch job, then catches up by noon. How do we stop it without buying bigger hardware?"),
    ("en", "How should I structure a multi-tenant Postgres schema for 5,000 customers where the largest 10 are 80% of the data? Schema-per-tenant, row-level, or separate DBs?"),
    ("en", "we get duplicate webhook deliveries from stripe and sometimes process a refund twice. what's the right way to make the handler safe?"),
    ("es", "¿Cómo garantizarías que un pago no se cobre dos veces si el cliente reintenta la petición tras un timeout?"),
    ("de", "Wir haben einen Monolithen mit 300 Tabellen. Wie schneiden wir Services so, dass möglichst wenige verteilte Transaktionen entstehen?"),
    ("zh", "我们的微服务在高峰期出现级联故障，请给出熔断、限流和降级的整体方案，并说明各自的取舍。"),
    ("ja", "キャッシュとデータベースの整合性をどう保つべきですか？書き込み時のパターンを比較してください。"),
    ("ru", "У нас Kafka-консьюмеры иногда обрабатывают сообщения дважды после ребаланса. Как добиться обработки ровно один раз?"),
    ("pt", "Como você projetaria um sistema de recomendação para um e-commerce com 2 milhões de produtos?"),
])
single("analysis-hard", "hard", [
    ("en", "A company offers either $120k salary or $95k plus 0.2% equity in a Series B startup valued at $400M. How would you think about which offer is better financially? Consider dilution and the probability of an exit."),
])
single("debug-hard", "hard", [
    ("fr", "Pourquoi mon application Spring consomme-t-elle de plus en plus de mémoire alors que le tas reste stable ? Donne les pistes à explorer dans l'ordre."),
])
single("code-hard", "hard", [
    ("en", "Write a SQL query that returns, for each user, the longest streak of consecutive days with at least one order."),
    ("en", (
        "Refactor this into a state machine and make sure no event can be processed twice after a crash:\n```python\n"
        "def handle(evt):\n    if evt.type == 'paid':\n        ship(evt.order)\n    elif evt.type == 'refund':\n"
        "        refund(evt.order)\n    db.mark_done(evt.id)\n```"
    )),
])
for lang, history, follow in [
    ("en", [
        user("In the Monty Hall problem with 100 doors where the host knowingly opens 98 empty ones, what's the probability of winning by switching? Derive it."),
        assistant("Switching wins with probability 99/100: your first pick is right with probability 1/100, and the host's choice reveals nothing about it..."),
    ], "what if the host opens doors at random and just happens not to reveal the car?"),
    ("en", [
        user("How would you implement backpressure in a gRPC streaming service?"),
        assistant("Use flow-control windows on the HTTP/2 stream, bound the send queue per stream, and have the producer await the writer's readiness..."),
    ], "ok but what if the client is only slow some of the time?"),
    ("es", [
        user("Explícame el algoritmo de Paxos."),
        assistant("Paxos tiene dos fases: en la fase 1 un proponente elige un número de propuesta n y pide promesas a una mayoría de aceptadores..."),
    ], "¿y qué pasa si dos proponentes compiten indefinidamente?"),
    ("zh", [
        user("解释一下Raft的日志复制过程。"),
        assistant("Leader接收客户端请求后追加到本地日志，然后通过AppendEntries并行发送给Follower，多数派确认后提交……"),
    ], "那如果leader在提交之前宕机了呢？"),
    ("ru", [
        user("Спроектируй схему шардирования для чата со 100 млн пользователей."),
        assistant("Шардируем сообщения по идентификатору диалога, метаданные пользователей — по user_id, используем консистентное хеширование..."),
    ], "а как быть с групповыми чатами?"),
]:
    add("multi-hard", "hard", lang, [*history, user(follow)])
add("agent-hard", "hard", "en", [
    system(AGENT_SYSTEM),
    user("Something is wrong with yesterday's revenue numbers — they're 30% lower than what the payments provider reports. Find out where the discrepancy comes from."),
], tools=TOOLS, tool_choice="auto")
add("long-hard", "hard", "en", [user(
    "We want to terminate early because the supplier missed two deliveries. Under this contract, what are our options, "
    "and what could the supplier argue back?\n\n" + compose(CONTRACT_EN, 800, 2500, joiner="\n", paragraph=12)
)])
add("long-hard", "hard", "en", [user(
    "```\n" + logs(801, 70) + "\n```\nCorrelate the 500s with the slow queries and tell me whether the slow query is the cause or a symptom."
)])

single("short-simple", "simple", [
    ("en", "What's the population of Japan?"),
    ("en", "Can you recommend a good book on habits?"),
    ("en", "How long should I boil pasta?"),
    ("en", "Give me 3 ideas for a team lunch in the office."),
    ("en", "Spell out the number 1,250 in words."),
    ("en", "List the planets in order from the sun."),
    ("es", "Dame una receta fácil de guacamole."),
    ("de", "Was bedeutet 'Feierabend'?"),
    ("de", "Schreib mir eine Einkaufsliste für ein Frühstück für vier Personen."),
    ("fr", "Quel temps fait-il généralement à Nice en octobre ?"),
    ("zh", "北京到上海坐高铁大概要多久？"),
    ("ja", "おすすめの朝ごはんを教えてください。"),
    ("ru", "Как сварить гречку?"),
    ("ru", "Напиши список дел на выходные: уборка, магазин, спортзал."),
])
single("explain-simple", "simple", [
    ("en", "What's the difference between 'affect' and 'effect'?"),
    ("en", "What's the difference between a virus and bacteria?"),
    ("zh", "什么是区块链？用简单的话解释。"),
])
single("write-simple", "simple", [
    ("en", "Rewrite this sentence in passive voice: The committee approved the budget."),
    ("en", "Turn these notes into a bulleted list: eggs milk bread coffee"),
    ("en", "Is it 'who' or 'whom' in: 'To ___ should I address the letter?'"),
    ("es", "¿Cómo se escribe correctamente, 'haber' o 'a ver', en 'vamos a ver la película'?"),
    ("fr", "Corrige les fautes : 'Je suis allé au magasin hier et j'ai acheter du pain.'"),
    ("zh", "帮我把这段话改得更礼貌一点：明天的会你必须来。"),
    ("ja", "「よろしくお願いします」を英語で何と言いますか？"),
])
single("code-trivial", "simple", [
    ("en", "Make this print on one line:\n```python\nfor x in [1, 2, 3]:\n    print(x)\n```"),
    ("en", "What's the keyboard shortcut to comment a line in VS Code?"),
    ("en", "change the color of this button to blue:\n```html\n<button style=\"color: red\">Save</button>\n```"),
    ("en", "Explain what this does: `df.groupby('city')['sales'].sum()`"),
])
add("long-simple", "simple", "en", [user(compose(ARTICLE_EN, 802, 5000) + "\n\nWhat is this article about? One line.")])
add("long-simple", "simple", "en", [user("Did the customer like the product?\n\n" + review("en", seed=803))])
add("long-simple", "simple", "en", [user(compose(MEETING_EN, 804, 4000, joiner="\n", paragraph=14) + "\n\nWho is responsible for the screenshots?")])
add("long-simple", "simple", "es", [user(review("es", seed=805) + "\n\n¿Qué opina el cliente del depósito de agua?")])
for lang, text in [
    ("en", "Add 'buy milk' to my reminders for 6pm."),
    ("de", "Schick Paul eine Mail, dass das Meeting ausfällt."),
]:
    add("agent-simple", "simple", lang, [system(AGENT_SYSTEM), user(text)], tools=TOOLS, tool_choice="auto")
add("pipeline-simple", "simple", "en", [
    system("Summarize the user's text in one sentence."),
    user("Our architecture analysis found that the checkout service fails under partition because it writes to the primary "
         "database in another region synchronously; the team proposes an outbox pattern with idempotent consumers, and "
         "estimates two sprints of work, with a risk that the reconciliation job must be rewritten."),
])
add("pipeline-simple", "simple", "en", [
    system("You are a translation engine. Translate the user's message into German. Output only the translation."),
    user("Can you explain why the proof of Fermat's Last Theorem took 350 years?"),
])
add("multi-simple", "simple", "en", [
    user("What's a good name for a cat?"),
    assistant("Luna, Milo, Oliver, Nala, Leo."),
    user("something more unusual?"),
])
add("multi-simple", "simple", "en", [*HARD_TURN, user("can you put that in bullet points?")])


# ================================================================ round 3
# Written after the changes that round 2 prompted were frozen; labelled before the classifier
# saw them, and scored once.
ROUND = 3

GO_WORKERS = (
    "```go\nfunc fetchAll(ctx context.Context, urls []string) []Result {\n    out := make(chan Result)\n"
    "    for _, u := range urls {\n        go func(u string) {\n            r, err := fetch(ctx, u)\n"
    "            if err != nil {\n                return\n            }\n            out <- r\n        }(u)\n    }\n"
    "    var results []Result\n    for i := 0; i < len(urls); i++ {\n        select {\n        case r := <-out:\n"
    "            results = append(results, r)\n        case <-ctx.Done():\n            return results\n        }\n    }\n"
    "    return results\n}\n```"
)
single("short-hard", "hard", [
    ("en", "Show me how to count the spanning trees of K_n and why Cayley's formula holds."),
    ("en", "what's the smallest n such that n! has more than 1000 trailing zeros"),
    ("en", "Explain the difference between serializable and snapshot isolation with an example of write skew."),
    ("en", "Given a 1000x1000 grid with obstacles, count the paths from top-left to bottom-right moving only right or down, modulo 1e9+7."),
    ("es", "Explica por qué la mediana es más robusta que la media y demuéstralo con el concepto de punto de ruptura."),
    ("fr", "Explique pourquoi l'algorithme de Dijkstra est correct (invariant de boucle inclus)."),
    ("zh", "请推导逻辑回归的损失函数梯度，并解释为什么它是凸的。"),
    ("ja", "ゲーム理論の観点から、オークションで二位価格方式が真実申告を促す理由を説明してください。"),
    ("ru", "Найди ошибку в рассуждении: «все лошади одного цвета», доказательство по индукции."),
    ("de", "Berechne die Wahrscheinlichkeit, dass bei 5 Würfen mit zwei Würfeln mindestens einmal eine Doppel-Sechs fällt, und erkläre den Rechenweg."),
])
single("design-hard", "hard", [
    ("en", "My Python service handles 200 req/s fine but falls over at 250 — CPU is only at 60%. What's likely going on and how would you confirm it?"),
    ("en", "Can you explain how a B+ tree handles a split that propagates to the root, and what happens to concurrent readers during it?"),
    ("en", "I have 3 microservices writing to the same Postgres table and sometimes rows get overwritten with stale data. Options?"),
    ("en", "Help me plan the rollout of a breaking API change to 40 external customers with different upgrade cycles."),
    ("es", "Tengo una tabla de 200 millones de filas en MySQL y las consultas por rango de fechas tardan minutos. ¿Qué harías?"),
    ("de", "Wie würdest du ein Abrechnungssystem für nutzungsbasierte Preise bauen, das auch bei Ausfällen keine Nutzung doppelt berechnet?"),
    ("de", "Unser React-Frontend rendert bei jeder Eingabe die ganze Liste mit 10.000 Einträgen neu. Wie finde ich die Ursache und was sind die Optionen?"),
    ("fr", "Quelle stratégie d'indexation recommanderais-tu pour une recherche plein texte multilingue sur 50 millions de documents ?"),
    ("zh", "我们的推荐系统离线AUC提升了，但线上点击率下降了，可能是什么原因？怎么排查？"),
    ("zh", "一个分布式ID生成器，要求全局唯一、趋势递增、每秒百万级，你会怎么做？"),
    ("ja", "大規模なモノレポでCIの実行時間が2時間を超えています。短縮するための戦略を優先順位付きで提案してください。"),
    ("ru", "Почему в PostgreSQL VACUUM не освобождает место на диске, и что с этим делать на таблице в 2 ТБ?"),
    ("ko", "동시성 환경에서 싱글톤 패턴을 안전하게 구현하는 방법과 각 방법의 장단점을 설명해 주세요."),
    ("it", "Come progetteresti un sistema di pagamenti che resiste al doppio addebito in caso di retry?"),
])
single("analysis-hard", "hard", [
    ("en", "If I invest $500/month at 7% annual return compounded monthly, how many years until I reach $1M? Derive the formula rather than just plugging numbers."),
    ("en", "Our ML model's validation accuracy is 94% but production accuracy is 71%. List the likely causes and how to tell them apart."),
    ("en", "Is it ever rational to cooperate in a one-shot prisoner's dilemma? Discuss with reference to superrationality and evidential decision theory."),
])
single("code-hard", "hard", [
    ("en", "Write a Python decorator that retries a coroutine with exponential backoff and jitter, respects a total deadline, and doesn't retry on cancellation."),
    ("en", f"Review this for concurrency bugs.\n\n{GO_WORKERS}"),
])
for lang, history, follow in [
    ("en", [
        user("What's the CAP theorem?"),
        assistant("It says a distributed data store can't simultaneously guarantee consistency, availability and partition tolerance; during a partition you must choose C or A."),
    ], "So is Spanner CA? Google says it effectively is."),
    ("en", [
        user("Derive the closed form of the Fibonacci numbers."),
        assistant("Solve the characteristic equation x² = x + 1, roots φ and ψ, so F(n) = (φⁿ − ψⁿ)/√5 (Binet's formula)."),
    ], "and how would that generalise to a(n) = a(n-1) + a(n-2) + a(n-3)?"),
    ("es", [
        user("¿Cómo funciona el recolector de basura de Go?"),
        assistant("Es un recolector concurrente de marcado y barrido tricolor, con barreras de escritura..."),
    ], "¿y por qué no es generacional?"),
    ("fr", [
        user("Qu'est-ce qu'un arbre de Merkle ?"),
        assistant("Un arbre dont chaque feuille est le hachage d'un bloc de données et chaque nœud interne le hachage de ses enfants."),
    ], "Et comment l'utiliser pour synchroniser deux répliques efficacement ?"),
    ("ru", [
        user("Что такое двухфазный коммит?"),
        assistant("Протокол, в котором координатор сначала просит участников подготовиться (prepare), а затем рассылает commit или abort."),
    ], "а что будет, если координатор упадёт после prepare?"),
]:
    add("multi-hard", "hard", lang, [*history, user(follow)])
add("agent-hard", "hard", "en", [
    system(AGENT_SYSTEM),
    user("Our signup conversion dropped after Tuesday's release. Dig into the funnel metrics and recent commits and tell me what changed and why."),
], tools=TOOLS, tool_choice="auto")

single("short-simple", "simple", [
    ("en", "whats a good gift for a 5 year old who likes dinosaurs"),
    ("en", "Give me a 3-day itinerary for Rome."),
    ("en", "How many calories are in a banana?"),
    ("en", "Convert 5 feet 9 inches to centimeters."),
    ("de", "Nenne mir drei Sehenswürdigkeiten in Hamburg."),
    ("zh", "推荐一部适合全家看的电影。"),
    ("ja", "東京から大阪まで新幹線で何時間かかりますか？"),
    ("ru", "Придумай название для кофейни у моря."),
    ("ko", "오늘 저녁 메뉴 추천해 줘."),
])
single("explain-simple", "simple", [
    ("en", "Explain the offside rule in football."),
    ("en", "What does 'idempotent' mean?"),
    ("es", "¿Qué significa 'estar en las nubes'?"),
    ("fr", "Quelle est la différence entre « tu » et « vous » ?"),
])
single("write-simple", "simple", [
    ("en", "Write a limerick about a programmer who loves coffee."),
    ("en", "Can you make this email sound friendlier? 'Please send the report by Friday.'"),
    ("es", "Escribe un tuit anunciando nuestro nuevo horario de verano."),
    ("de", "Formuliere diesen Satz höflicher: Schick mir endlich die Unterlagen."),
    ("fr", "Écris une courte description pour une annonce de vélo d'occasion."),
    ("ja", "この文章の誤字を直してください：「明日の会義は十時からです。」"),
])
single("translate-simple", "simple", [
    ("zh", "把“我今天很忙”翻译成日语。"),
    ("ru", "Как по-английски будет «подоконник»?"),
    ("it", "Come si dice 'buonanotte' in tedesco?"),
])
single("code-trivial", "simple", [
    ("en", "What's the Python equivalent of JavaScript's `array.map`?"),
    ("en", "Write a bash one-liner to count the lines in all .txt files in a folder."),
    ("en", "How do I center a div?"),
    ("en", "Add a comment above each line explaining it:\n```python\nx = input()\nprint(x.upper())\n```"),
    ("en", "Why does Python say `IndentationError: unexpected indent`?"),
    ("es", "¿Cómo instalo pandas con pip?"),
])
add("long-simple", "simple", "en", [user("Make a list of the people quoted in this article.\n\n" + compose(ARTICLE_EN, 900, 5000))])
add("long-simple", "simple", "en", [user(compose(MEETING_EN, 901, 4000, joiner="\n", paragraph=14) + "\n\nSummarize the decisions made.")])
add("long-simple", "simple", "en", [user("```\n" + logs(902, 60) + "\n```\nWhat's the most common HTTP status in these logs?")])
add("long-simple", "simple", "en", [user("Rate this review's helpfulness from 1 to 5.\n\n" + review("en", seed=903))])
add("long-simple", "simple", "zh", [user(review("zh", seed=904) + "\n\n这条评论提到了哪些优点？")])
for lang, text in [("en", "cancel my 3pm meeting"), ("en", "What's the EUR to GBP rate today?")]:
    add("agent-simple", "simple", lang, [system(AGENT_SYSTEM), user(text)], tools=TOOLS, tool_choice="auto")
add("pipeline-simple", "simple", "en", [
    system("You label product reviews as POSITIVE, NEGATIVE or NEUTRAL."),
    user("I analysed the trade-offs between this router and the competitor's design before buying. Setup was painless, "
         "range is great, and it hasn't dropped a connection in two months. Why didn't I buy it sooner?"),
])
add("multi-simple", "simple", "en", [
    user("Recommend a sci-fi novel."),
    assistant("Try 'The Left Hand of Darkness' by Ursula K. Le Guin."),
    user("I've read it. Another one?"),
])
add("multi-simple", "simple", "en", [
    user("Design a rate limiter for a multi-region API gateway handling 2M requests per second. Discuss consistency between regions."),
    assistant("A two-level design: local token buckets per gateway node, refilled from a regional budget that is reconciled across regions every 100 ms via a CRDT counter... (design continues)"),
    user("Thanks, can you summarize that in 3 bullet points for my manager?"),
])


# ================================================================ round 4
# Written after the classifier of the final report was frozen, labelled before it saw them,
# scored once and never tuned on: the figure to expect on traffic unlike the rest of the set.
ROUND = 4

single("analysis-hard", "hard", [
    ("en", "A ball is thrown upward at 20 m/s from the edge of a 45 m cliff. When and at what speed does it hit the ground below? Ignore air resistance."),
    ("en", "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may draw one fruit from one box. How do you relabel all of them?"),
    ("en", "My landlord kept my whole deposit for 'wear and tear' after 6 years. In California, what are my arguments and what evidence should I collect?"),
    ("en", "Balance this redox equation in acidic solution and explain the half-reactions: MnO4- + Fe2+ → Mn2+ + Fe3+"),
    ("en", "I'm choosing between a 15-year mortgage at 5.1% and a 30-year at 5.8% on $400k. I could invest the difference at about 7%. Which makes more sense over 15 years? Show the numbers."),
    ("en", "Write a 12-line poem in iambic pentameter where the first letters of the lines spell ALGORITHMICS and every line ends with a word that rhymes with 'light'."),
    ("en", "How does the ECB raising rates affect a Spanish homeowner with a variable mortgage versus a German saver? Walk through the mechanisms."),
    ("en", "Patient on warfarin starts a course of ciprofloxacin. What interaction do you expect, why, and how should INR monitoring change?"),
    ("en", "We have 5 engineers, 3 projects with deadlines in 4, 6 and 10 weeks, and dependencies between them. How would you schedule the work to minimise lateness?"),
    ("en", "Is earliest-finish-time-first always optimal for interval scheduling? Convince me."),
    ("es", "Si un tren sale de Madrid a 250 km/h y otro de Barcelona a 300 km/h por la misma vía de 620 km, ¿dónde se cruzan y qué margen de frenado haría falta si se detectan a 10 km?"),
    ("es", "Mi empresa quiere pasar de facturación anual a mensual. ¿Qué impacto tendrá en el flujo de caja, la tasa de cancelación y el reconocimiento de ingresos?"),
    ("de", "Ein Mieter zahlt seit drei Monaten keine Miete und beruft sich auf Schimmel in der Wohnung. Wie ist die Rechtslage, und was sollte der Vermieter jetzt tun?"),
    ("de", "Warum führt eine größere Kapazität in einem RC-Tiefpass zu einer niedrigeren Grenzfrequenz? Leite die Formel her."),
    ("fr", "Un patient de 70 ans présente une confusion soudaine et de la fièvre. Quelles hypothèses diagnostiques envisager en priorité et pourquoi ?"),
    ("fr", "Écris un plan de dissertation sur « La liberté est-elle compatible avec l'égalité ? » avec thèse, antithèse, synthèse et des références philosophiques."),
    ("zh", "一个水池有两个进水管和一个出水管，单开甲管6小时注满，单开乙管8小时注满，单开丙管12小时放完。三管同开，几小时注满？请列式说明。"),
    ("zh", "分析一下2008年金融危机中CDO和CDS是如何放大风险的。"),
    ("ja", "量子もつれを使っても光速を超えて情報を送れない理由を、直感的かつ正確に説明してください。"),
    ("ru", "Почему при повышении ключевой ставки рубль может укрепиться, а может и нет? Разбери механизмы."),
])
add("multi-hard", "hard", "en", [
    user("What's the difference between a mutex and a semaphore?"),
    assistant("A mutex has an owner and protects a critical section; a semaphore is a counter that any thread may signal."),
    user("When would a semaphore with count 1 behave differently from a mutex in practice?"),
])
add("multi-hard", "hard", "en", [
    user("I'm writing a fantasy novel. The magic system costs the caster their memories."),
    assistant("Interesting! That gives every spell a personal price. Do casters choose which memories they lose?"),
    user("Help me work out the rules so there are no loopholes a clever character could exploit."),
])

single("short-simple", "simple", [
    ("en", "why do cats purr?"),
    ("en", "What's a polite way to decline a wedding invitation?"),
    ("en", "Recommend a laptop under $800 for a college student who mostly writes essays and watches videos."),
    ("en", "What's the best time of year to visit Iceland?"),
    ("en", "How do I remove a red wine stain from a carpet?"),
    ("de", "Wie lange ist ein Reisepass in Deutschland gültig?"),
    ("fr", "Peux-tu me donner une liste de courses pour une raclette pour 6 personnes ?"),
    ("ja", "週末に読むのにおすすめの小説を3冊教えてください。"),
    ("ru", "Какие документы нужны для получения загранпаспорта?"),
])
single("explain-simple", "simple", [
    ("en", "Can you tell me why my sourdough came out flat? I fed the starter yesterday and let the dough rise for 4 hours."),
    ("en", "My kid asks why the moon changes shape. How can I explain it to a 6 year old?"),
    ("en", "Explain the difference between a Roth IRA and a traditional IRA."),
    ("es", "¿Por qué se celebra el Día de los Muertos?"),
    ("zh", "为什么秋天叶子会变黄？给小学生解释一下。"),
])
single("write-simple", "simple", [
    ("en", "Write a short bio for my LinkedIn: I'm a nurse with 8 years in pediatrics, now moving into health tech."),
    ("en", "Is it 'everyday' or 'every day' in: 'I go running ___'?"),
])
single("code-trivial", "simple", [
    ("en", "How do I install Node.js on Ubuntu?"),
    ("en", "What's the difference between `let` and `const` in JavaScript?"),
    ("en", "Generate a .gitignore for a Python project."),
])
add("agent-simple", "simple", "en", [
    system(AGENT_SYSTEM),
    user("Can you check if I have anything on Friday afternoon and if not, block 2–4pm for focus time?"),
], tools=TOOLS, tool_choice="auto")
add("multi-simple", "simple", "en", [
    user("Give me a name for my fantasy football team."),
    assistant("How about 'The Gridiron Gurus'?"),
    user("funnier please"),
])
add("long-simple", "simple", "en", [user(
    compose(MEETING_EN, 1000, 4000, joiner="\n", paragraph=14) + "\n\nDraft a short follow-up email to the team with the action items."
)])


def main() -> None:
    with OUT.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    labels = [r["label"] for r in records]
    size = OUT.stat().st_size
    print(f"{len(records)} requests ({labels.count('simple')} simple, {labels.count('hard')} hard), {size / 1e6:.2f} MB -> {OUT}")


if __name__ == "__main__":
    main()
