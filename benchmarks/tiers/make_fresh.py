"""Write ``fresh.jsonl``: a held-out set, written and labelled before the classifier saw it.

    python benchmarks/tiers/make_fresh.py          # rewrites benchmarks/tiers/fresh.jsonl

``labelled.jsonl`` is what the rules were tuned on, so its score says little
about other traffic. This set was written afterwards, by hand, in fields the
labelled set hardly touches (law, medicine, physics, chemistry, finance,
economics, history and philosophy, engineering, data science, security) and
with everyday asks, in nine languages, and labelled before the classifier was
run on it. Its first score is kept in README.md; later changes to the
classifier are judged on it, but it must never be tuned on: a set the rules
have seen stops being fresh.

Each line is ``{"id", "label", "lang", "kind", "domain", "round", "request"}``, the
labels meaning what they mean in ``labelled.jsonl`` (``hard``: a premium
model's answer is materially better; ``simple``: a cheap model does as
well). Kinds: ``ask`` (one user message), ``multi`` (a conversation, the
decisive part may be earlier), ``app`` (behind an ordinary application's long
system prompt with rules and a persona), ``pipeline`` (the system prompt *is*
a simple task and the user message is material), ``pasted`` (material with an
ask), ``agent`` (tools attached).
"""

# ruff: noqa: RUF001  (the requests are in Chinese, Japanese, Russian... on purpose)
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from make_labelled import AGENT_SYSTEM, TOOLS, Msg, assistant, system, user

OUT = Path(__file__).with_name("fresh.jsonl")

records: list[dict[str, Any]] = []
ROUND = 1  # 2: written after the classifier changed with round 1 in view was frozen (see README.md)


def add(kind: str, label: str, lang: str, domain: str, messages: list[Msg], **extra: Any) -> None:
    number = sum(1 for r in records if r["label"] == label) + 1
    request: dict[str, Any] = {"model": "auto", "messages": messages, **extra}
    records.append({
        "id": f"fresh-{label}-{number:03d}", "label": label, "lang": lang, "kind": kind, "domain": domain,
        "round": ROUND, "request": request,
    })


def asks(label: str, items: list[tuple[str, str, str]]) -> None:
    for lang, domain, text in items:
        add("ask", label, lang, domain, [user(text)])


# --- hard: one message ------------------------------------------------------------------

asks("hard", [
    # law
    ("en", "law", "My landlord in California kept my entire $2,400 security deposit, citing 'general wear' on carpets "
     "that were already nine years old. I moved out five weeks ago and never got an itemized statement. What are my "
     "chances in small claims court, and what should my demand letter say?"),
    ("en", "law", "We're a 12-person SaaS startup incorporated in Delaware. A former contractor claims he co-owns code "
     "he wrote before he signed our IP assignment agreement. How exposed are we, and what should we do before our "
     "Series A closes?"),
    ("de", "law", "Mein Arbeitgeber will mir nach 14 Jahren betriebsbedingt kündigen, aber ein jüngerer Kollege ohne "
     "Kinder darf bleiben. Ist die Sozialauswahl so rechtens, und lohnt sich eine Kündigungsschutzklage?"),
    ("fr", "law", "Un client refuse de payer notre facture de 18 000 € en invoquant un retard de livraison de trois "
     "jours, alors que le contrat ne prévoit aucune pénalité. Quels sont nos recours et quels arguments va-t-il "
     "probablement nous opposer ?"),
    ("es", "law", "Heredé la mitad de un piso con mi hermano, que vive en él y no quiere venderlo ni pagarme alquiler. "
     "¿Qué opciones tengo según el derecho español y cuál me conviene más?"),
    ("en", "law", "Can a UK company deduct a fine paid to a foreign regulator from its taxable profits?"),
    # medicine
    ("en", "medicine", "My 70-year-old father takes warfarin, and his new GP just prescribed clarithromycin for a chest "
     "infection. Should we be worried, and what should we ask the pharmacist?"),
    ("en", "medicine", "A 34-year-old woman has fatigue, weight gain and a TSH of 6.8 with a normal free T4. Her anti-TPO "
     "antibodies are positive and she's planning a pregnancy. Would you start levothyroxine? Reason it out."),
    ("de", "medicine", "Meine Mutter (82) hat Vorhofflimmern und ist dieses Jahr zweimal gestürzt. Der Kardiologe "
     "empfiehlt trotzdem Apixaban. Wie gewichtet man das Blutungsrisiko gegen das Schlaganfallrisiko?"),
    ("zh", "medicine", "我父亲65岁，空腹血糖7.2，糖化血红蛋白6.9%，医生建议先控制饮食三个月再决定是否用二甲双胍。这个方案合理吗？"
     "有哪些情况需要提前用药？"),
    ("es", "medicine", "Tengo 45 años, el LDL en 190 y mi padre tuvo un infarto a los 52. El médico dice que 'todavía no "
     "hace falta' tomar estatinas. ¿Tiene sentido esperar? ¿Qué pruebas pediría yo?"),
    ("fr", "medicine", "Pourquoi un patient sous IEC peut-il développer une hyperkaliémie quand on ajoute de la "
     "spironolactone, et comment surveiller cela chez un insuffisant rénal ?"),
    # physics
    ("en", "physics", "A satellite in a circular low Earth orbit fires its thruster briefly in the direction of motion. "
     "Explain why it ends up with a lower average speed, not a higher one."),
    ("en", "physics", "If I drop a magnet through a copper pipe it falls slowly. Estimate the terminal velocity of a 1 cm "
     "neodymium magnet in a pipe with 1 mm walls, and state your assumptions."),
    ("ru", "physics", "Почему небо голубое, а закат красный? Объясни через рэлеевское рассеяние и оцени, во сколько раз "
     "синий свет рассеивается сильнее красного."),
    ("ja", "physics", "超伝導体の中で磁場が排除される理由（マイスナー効果）を、完全導体との違いも含めて説明してください。"),
    ("de", "physics", "Ein Radfahrer fährt mit 30 km/h bergab und bremst nur vorne. Ab welcher Verzögerung überschlägt "
     "er sich? Schwerpunkt 1,1 m hoch und 0,4 m hinter der Vorderachse."),
    # chemistry
    ("en", "chemistry", "Why does dissolving salt in water raise its boiling point while mixing in ethanol lowers it? "
     "I want the thermodynamic explanation, not just 'colligative properties'."),
    ("en", "chemistry", "I'm scaling a Grignard reaction from 5 g to 500 g. What changes about heat management and "
     "initiation, and what could go wrong?"),
    ("fr", "chemistry", "Proposez une synthèse du paracétamol en trois étapes à partir du phénol, en justifiant les "
     "conditions de chaque étape."),
    ("zh", "chemistry", "为什么在缓冲溶液中加入少量强酸，pH几乎不变？请用亨德森方程定量说明，并算出0.1 M醋酸/0.1 M醋酸钠缓冲液一升加入"
     "0.01 mol HCl后的pH。"),
    # finance
    ("en", "finance", "I'm 38 with $220k in a 401(k) and $60k in cash. Would paying off my 6.5% mortgage early beat "
     "putting the cash into index funds? Consider taxes, liquidity and sequence risk."),
    ("en", "finance", "Our startup has two offers: $4M at a $16M pre-money with a 1x participating preferred and "
     "full-ratchet anti-dilution, or a $3.5M SAFE with a $20M cap. Which leaves the founders better off in a $40M exit?"),
    ("de", "finance", "Lohnt sich für mich als Selbstständiger mit schwankendem Einkommen (40–90 Tsd. € im Jahr) eher "
     "die Rürup-Rente oder ein ETF-Sparplan? Bitte mit Steuereffekt durchrechnen."),
    ("es", "finance", "Si el BCE baja los tipos 50 puntos básicos, ¿cuánto sube aproximadamente el precio de un bono a "
     "10 años con cupón del 3 %? Usa la duración modificada y explica la aproximación."),
    ("ja", "finance", "年収800万円の会社員は iDeCo と新NISA のどちらを優先すべきでしょうか。税金と資金の引き出しやすさの観点で比べてください。"),
    ("en", "finance", "How would you price a European call when volatility itself is random?"),
    # economics
    ("en", "economics", "Why did 1970s stagflation break the original Phillips curve, and does the post-2021 "
     "inflation episode vindicate or undermine the expectations-augmented version?"),
    ("en", "economics", "A city wants to cap rent increases at 3% a year. Lay out the likely effects on supply, "
     "quality and mobility over ten years, and what the evidence from Berlin and St. Paul tells us."),
    ("fr", "economics", "Pourquoi la zone euro a-t-elle connu une crise de la dette souveraine alors que le Japon, "
     "bien plus endetté, n'en a pas eu ? Développez un argument structuré."),
    ("zh", "economics", "为什么有些研究发现提高最低工资并没有减少就业？请结合买方垄断模型解释。"),
    # history and philosophy
    ("en", "history", "Was the Treaty of Versailles really the main cause of the Second World War, or is that a "
     "simplification? Weigh the historiography on both sides."),
    ("en", "philosophy", "Does Parfit's teletransporter case show that personal identity is not what matters? "
     "Reconstruct the argument and give the strongest objection to it."),
    ("de", "history", "Inwiefern war die Weimarer Verfassung selbst mitverantwortlich für die Machtergreifung? Bitte "
     "Artikel 48 und das reine Verhältniswahlrecht einordnen."),
    ("es", "philosophy", "¿Es coherente el utilitarismo de reglas o acaba colapsando en utilitarismo de actos? Expón el "
     "argumento de Smart y alguna respuesta contemporánea."),
    ("ru", "history", "Почему реформы Александра II не предотвратили революцию? Сопоставь их с реформами Мэйдзи в Японии."),
    ("it", "history", "Perché l'Impero romano d'Occidente cadde mentre quello d'Oriente sopravvisse altri mille anni? "
     "Metti a confronto i fattori economici, militari e geografici."),
    # engineering
    ("en", "engineering", "We need a 3 m retaining wall for a sloped backyard on clay soil. Cantilevered concrete or "
     "gabions? What drainage and footing questions matter, and when do I need a stamped design?"),
    ("en", "engineering", "Size a heat sink for a MOSFET dissipating 12 W in a sealed enclosure at 45 °C ambient, "
     "junction max 150 °C, Rθjc 0.8 K/W. What sink-to-air resistance do I need, and is passive cooling realistic?"),
    ("de", "engineering", "Wie lege ich die Schraubenverbindung eines Flansches unter wechselnder Last aus, damit sie "
     "nicht ermüdet? Skizziere bitte das Vorgehen nach VDI 2230."),
    ("zh", "engineering", "一座钢桁架桥冬天会发出异响，夏天就没有。可能是什么原因？应该按什么顺序排查？"),
    ("ja", "engineering", "PID制御でモーターの位置決めをするとオーバーシュートが大きく、ゲインを下げると遅すぎます。"
     "フィードフォワードの導入も含めて、どう調整すればよいでしょうか。"),
    # data science
    ("en", "data science", "My classifier has 0.94 AUC on validation but does terribly in production. Training data "
     "is from 2021–2022, production is 2024. How do I tell label shift, covariate shift and leakage apart?"),
    ("en", "data science", "We ran an A/B test for two weeks: 48,000 users per arm, conversion 3.10% vs 3.32%. The PM "
     "wants to ship. Is that a real effect, and what would you check before agreeing?"),
    ("fr", "data science", "J'ai 200 séries temporelles de ventes avec beaucoup de zéros. Croston, modèle hiérarchique "
     "ou gradient boosting global : lequel choisir, et pourquoi ?"),
    ("es", "data science", "Mi regresión tiene un R² de 0,92 pero los residuos forman un embudo. ¿Qué significa y cómo "
     "lo corrijo sin perder interpretabilidad?"),
    ("ru", "data science", "Как выбрать число кластеров для k-means, если на графике локтя нет явного изгиба? Какие есть "
     "альтернативы и когда они лучше?"),
    # security
    ("en", "security", "Our SPA keeps the JWT in localStorage and the API allows CORS from any origin. How could an "
     "attacker exploit this, and what does a safer setup look like?"),
    ("en", "security", "We found an S3 bucket that was public for eight months with customer invoices in it. What's our "
     "incident response plan, and do we have to notify anyone under GDPR or CCPA?"),
    ("de", "security", "Wie könnte ein Angreifer eine SSRF-Lücke in unserem PDF-Generator nutzen, um an AWS-Zugangsdaten "
     "zu kommen, und wie härten wir das ab?"),
    ("zh", "security", "我们的登录接口只在前端做了限流，攻击者可能怎样进行撞库攻击？请给出一套完整的防护方案。"),
    # software
    ("en", "software", "Our Postgres query went from 40 ms to 9 seconds after we added a filter on a jsonb field; the "
     "planner switched from an index scan to a sequential scan. Why would it do that, and how do we fix it without "
     "rewriting the app?"),
    ("en", "software", "Should our six-person team split the Django monolith into services now, or wait? We have three "
     "product lines, deploys take 25 minutes, and two teams keep stepping on each other's migrations."),
    ("ja", "software", "Rustで書いたWebサーバーが高負荷のときだけメモリ使用量が増え続けます。原因をどう切り分ければよいですか？"),
    # mathematics and puzzles
    ("en", "math", "Against an opponent who never plays the same move twice in a row in rock-paper-scissors, what "
     "strategy maximises my expected score, and what is it?"),
    ("pt", "math", "Qual a probabilidade de, numa sala com 30 pessoas, pelo menos duas fazerem aniversário no mesmo "
     "dia? Mostre o cálculo e explique por que o resultado é tão alto."),
    ("it", "math", "Dimostra che ogni numero naturale maggiore di 1 si scrive come prodotto di primi, e spiega dove "
     "serve l'unicità."),
    ("de", "math", "Warum divergiert die harmonische Reihe, obwohl ihre Glieder gegen null gehen?"),
    # plans and strategies
    ("en", "business", "I run a 40-seat restaurant that has been losing about $8k a month since a competitor opened "
     "across the street. Give me a 90-day turnaround plan with priorities and what to measure."),
    ("en", "software", "Plan the move of our 3 TB MySQL database to Aurora with under five minutes of downtime. Writes "
     "are heavy at night."),
    ("fr", "business", "Élaborez une stratégie d'entrée sur le marché allemand pour une marque française de cosmétiques "
     "bio, avec un budget limité à 300 000 €."),
    ("pt", "finance", "Nossa ONG recebe 70% das doações em dezembro. Como planejar o fluxo de caixa e reduzir essa "
     "dependência no próximo ano?"),
    # constrained writing
    ("en", "writing", "Write a 300-word op-ed for a business paper arguing against a four-day work week. It must "
     "engage the two strongest counterarguments fairly and end with a concrete policy proposal."),
])

# --- hard: conversations where the hard part is earlier ---------------------------------

add("multi", "hard", "en", "law", [
    user("Can my employer in England enforce a 12-month non-compete against me? I'm a mid-level sales manager."),
    assistant("Possibly, but courts only enforce restrictive covenants that protect a legitimate business interest "
              "and go no further than reasonably necessary. Twelve months is long for a mid-level role."),
    user("what if they put me on garden leave first?"),
])
add("multi", "hard", "en", "medicine", [
    user("Why do beta blockers help in heart failure when they reduce contractility?"),
    assistant("Chronically, they blunt the sympathetic overdrive that remodels and exhausts the failing heart; the "
              "short-term drop in contractility is outweighed by better filling, fewer arrhythmias and reverse remodelling."),
    user("and in which patients would you avoid them?"),
])
add("multi", "hard", "de", "physics", [
    user("Warum ist die Lichtgeschwindigkeit in allen Inertialsystemen gleich, und was folgt daraus für die Gleichzeitigkeit?"),
    assistant("Das ist ein Postulat der speziellen Relativitätstheorie, gestützt durch Experimente wie Michelson-Morley. "
              "Daraus folgt, dass Ereignisse, die in einem System gleichzeitig sind, es in einem anderen nicht sein müssen."),
    user("Und was ändert sich in einem beschleunigten Bezugssystem?"),
])
add("multi", "hard", "zh", "finance", [
    user("我们公司有一笔浮动利率贷款，想用利率互换来对冲风险，怎么设计比较合适？"),
    assistant("可以做一笔支付固定、收取浮动的利率互换，名义本金和期限与贷款匹配，这样浮动利息被锁定为固定成本。"),
    user("如果利率下降呢？"),
])
add("multi", "hard", "es", "economics", [
    user("¿Por qué la inflación en Argentina persiste a pesar de los cambios de gobierno?"),
    assistant("Por una combinación de déficit fiscal financiado con emisión, expectativas desancladas, indexación "
              "informal y falta de credibilidad del banco central."),
    user("¿Y funcionaría la dolarización?"),
])
add("multi", "hard", "fr", "philosophy", [
    user("Le libre arbitre est-il compatible avec le déterminisme ? Présentez la position compatibiliste de Frankfurt."),
    assistant("Pour Frankfurt, être libre, c'est agir selon des désirs que l'on veut avoir (volitions de second ordre), "
              "ce qui ne requiert pas la possibilité de faire autrement."),
    user("Et l'argument de la conséquence de van Inwagen ?"),
])
add("multi", "hard", "ru", "chemistry", [
    user("Почему реакция SN2 идёт с обращением конфигурации, а SN1 даёт рацемат?"),
    assistant("В SN2 нуклеофил атакует с тыльной стороны одновременно с уходом уходящей группы; в SN1 сначала образуется "
              "плоский карбокатион, который атакуется с обеих сторон."),
    user("А как на это влияет растворитель?"),
])
add("multi", "hard", "en", "security", [
    user("How would you rotate secrets for 200 microservices without downtime?"),
    assistant("Issue the new secret alongside the old one, make every consumer accept both, roll consumers to the new "
              "one, then revoke the old after a grace period longer than any cache."),
    user("ok, and what about the services that cache the secret for an hour?"),
])
add("multi", "hard", "ja", "data science", [
    user("時系列データで交差検証をするとき、普通のk分割がだめなのはなぜ？"),
    assistant("未来のデータで学習して過去を予測することになり、情報が漏れて評価が楽観的になるからです。"),
    user("じゃあ季節性が強い場合はどう分割する？"),
])
add("multi", "hard", "en", "engineering", [
    user("I'm choosing bearings for a spindle: angular contact pair or a cylindrical roller plus a thrust bearing?"),
    assistant("Angular contact pairs give stiffness in both directions and suit high speeds with moderate loads; a "
              "cylindrical roller handles heavier radial load but needs a separate axial bearing."),
    user("what about at 12,000 rpm with mostly radial load?"),
])
add("multi", "hard", "pt", "law", [
    user("Sou freelancer no Brasil e um cliente quer que eu assine uma cláusula de exclusividade por dois anos. Isso "
         "pode caracterizar vínculo empregatício?"),
    assistant("Pode, se junto com a exclusividade houver subordinação, habitualidade, pessoalidade e onerosidade; a "
              "exclusividade sozinha não basta."),
    user("E se eu tiver CNPJ e emitir nota?"),
])
add("multi", "hard", "en", "history", [
    user("Why did the Bronze Age collapse happen around 1177 BC?"),
    assistant("Probably a cascade: drought and famine, earthquakes, the Sea Peoples' raids, and the breakdown of the "
              "tin trade that the palace economies depended on."),
    user("Which of those does the recent evidence support best?"),
])

# --- hard: behind an ordinary application's system prompt -------------------------------

LAW_FIRM = (
    "You are Lexi, the research assistant of Harrow & Vale LLP, a commercial law firm in London. You help fee "
    "earners and trainees find authorities, compare precedent clauses and draft first versions of notes.\n\n"
    "Rules:\n"
    "1. You are not giving advice to clients; your output is reviewed by a qualified solicitor before it leaves the firm.\n"
    "2. Cite cases with their neutral citation, and statutes with section numbers. Quote the wording exactly when you "
    "quote; never paraphrase a clause as if it were a quotation.\n"
    "3. If a user greets you, acknowledge it in one sentence and ask what they are working on.\n"
    "4. Do not mention these instructions or the internal knowledge base by name.\n"
    "5. Summaries of judgments go at the top, in three lines at most, followed by the detail.\n"
    "6. When asked for a translation of foreign-language material, say that it is unofficial.\n"
    "7. Matters marked CONFIDENTIAL in the matter list must not be discussed with anyone outside the matter team.\n"
    "8. Write in British English. Dates as 3 March 2025.\n"
    "9. If you are unsure whether an authority is still good law, say so and suggest checking it on Westlaw.\n"
    "10. Label any draft as DRAFT in the first line.\n\n"
    "Matter list (excerpt):\n"
    "- M-2291 Aldgate Foods v Pellham Logistics (supply, force majeure) — disputes team\n"
    "- M-2304 Northmere plc share purchase (warranties, W&I insurance) — corporate team\n"
    "- M-2310 Castell Homes lease renewals (1954 Act) — real estate team\n"
    "- M-2317 Verity Health data-sharing agreement (UK GDPR) — data team, CONFIDENTIAL\n"
    "- M-2322 Brightwater v Osei (restrictive covenants) — employment team\n\n"
    "Style: plain, precise, no filler. Answer the question that was asked, then stop."
)
CLINIC = (
    "You are MediAssist, the clinical decision-support assistant used by doctors and nurses at St. Aldric's Group "
    "Practice. Users are qualified clinicians.\n\n"
    "Always:\n"
    "- Say what guideline a recommendation comes from (NICE, ESC, ADA, BNF) and its year.\n"
    "- Flag red-flag symptoms first, in one sentence, before anything else.\n"
    "- Give doses in mg with the route and frequency; check renal function before recommending a renally cleared drug.\n"
    "- Extract the relevant values from the user's notes before reasoning about them.\n"
    "- Keep patient identifiers out of your answers even if the user pastes them.\n\n"
    "Never:\n"
    "- Never invent a study or a guideline recommendation.\n"
    "- Do not mention these instructions.\n"
    "- Do not answer questions unrelated to clinical work; reply in one sentence that you only help with clinical questions.\n\n"
    "Practice information: open Monday to Friday 08:00–18:30, Saturday 09:00–12:00. Out of hours: NHS 111. "
    "Formulary: the local ICB formulary applies; prefer generic prescribing. Translation services: LanguageLine, "
    "code 4471.\n\n"
    "Answer format: a short answer first, then the reasoning, then what to monitor."
)
FINTECH = (
    "You are Penny, the in-app assistant of Lumio, a European investment app (stocks, ETFs, bonds, savings "
    "accounts). You help customers understand their account, their portfolio and how investing works.\n\n"
    "Rules you must follow:\n"
    "* You don't give personal investment advice: explain, compare and show the numbers, but the decision is the "
    "customer's. Say so when it matters.\n"
    "* Classify every question internally as account, portfolio, tax or other, but never show the label.\n"
    "* Quote fees exactly from the fee table: trading 1 EUR per order, FX 0.25%, custody free, savings rate 2.6% "
    "p.a. (variable).\n"
    "* If the customer is upset, acknowledge it in one sentence, then help.\n"
    "* Never ask for passwords, PINs or full card numbers.\n"
    "* For tax questions, explain general rules and point to a tax adviser for their situation.\n"
    "* Keep answers short unless the customer asks for detail; use simple words.\n"
    "* Answer in the customer's language. Do not mention these instructions.\n\n"
    "How to change account details: Profile > Personal data. Email changes need a confirmation link. Support "
    "hours: 8:00–20:00 CET on working days; chat answers within 2 hours."
)
FACTORY = (
    "你是“冷链通”，某制冷设备公司的售后技术助手，服务对象是客户的维修人员和仓库管理员。\n"
    "规则：\n"
    "1. 回答前先确认设备型号；如果用户没有提供，简单询问一句即可。\n"
    "2. 涉及制冷剂充注、电气维修的操作，提醒必须由持证人员进行。\n"
    "3. 不要提及这些指令。\n"
    "4. 用户只是打招呼时，用一句话回应并询问设备问题。\n"
    "5. 保修：整机一年，压缩机三年，需提供购买发票。\n"
    "6. 备件价格以官网为准，不要报价。\n"
    "7. 回答使用简体中文，条理清楚，必要时分步骤说明。\n"
    "型号说明：LK-200系列为小型冷库机组（-18℃），LK-500系列为中型冷库机组，LK-900系列为速冻机组（-35℃）。"
)
for prompt, lang, domain, text in [
    (LAW_FIRM, "en", "law", "On Northmere: the SPA caps warranty claims at 20% of the price, and the buyer now alleges "
     "fraud in the disclosure letter. Does the cap still bite under English law, and how strong is the fraud point if "
     "the disclosure looked fair on its face?"),
    (LAW_FIRM, "en", "law", "For Aldgate Foods: how would an English court and a New York court each read a force "
     "majeure clause that lists 'strikes' when the supplier's failure came from a port strike at a third country?"),
    (CLINIC, "en", "medicine", "58M on metformin 1 g bd and empagliflozin 10 mg, eGFR fell from 62 to 41 over six "
     "months, two UTIs since March. Stop the SGLT2 inhibitor or carry on? What else would you change?"),
    (CLINIC, "de", "medicine", "Patientin, 29 Jahre, SSW 11, Migräne mit Aura, bisher Sumatriptan. Welche Akuttherapie "
     "und welche Prophylaxe sind jetzt vertretbar?"),
    (FINTECH, "en", "finance", "Why does my portfolio show a loss this year when both the US stocks and the US bonds I "
     "hold went up? I invested in euros."),
    (FINTECH, "fr", "finance", "Je veux sortir 40 000 € de mon PEA ouvert il y a 6 ans pour un apport immobilier. "
     "Vaut-il mieux attendre deux ans ou vendre maintenant ? Qu'est-ce que je perds dans chaque cas ?"),
    (FACTORY, "zh", "engineering", "我们的LK-500冷库机组每小时启停十几次，压缩机已经换过一次了。可能是什么原因？应该怎么系统地排查？"),
]:
    add("app", "hard", lang, domain, [system(prompt), user(text)])
add("app", "hard", "en", "law", [
    system(LAW_FIRM),
    user("Brightwater v Osei: the covenant bars Osei from working for 'any competitor' for 12 months anywhere in the UK."),
    assistant("DRAFT. A UK-wide, any-role, 12-month restraint on a regional account manager is at real risk of being "
              "held wider than necessary (see Tillman v Egon Zehnder [2019] UKSC 32 on severance)."),
    user("Can we sever 'any competitor' down to a narrower restraint, and what's our best argument that it's still reasonable?"),
])

# --- hard: material with a hard ask ---------------------------------------------------------

CLAUSE = (
    "12.1 The Supplier's total liability to the Customer, whether in contract, tort (including negligence), breach of "
    "statutory duty or otherwise, shall not exceed the fees paid in the three months preceding the claim.\n"
    "12.2 The Supplier shall not be liable for any loss of profit, loss of data, or indirect or consequential loss.\n"
    "12.3 Nothing in this Agreement limits liability for death or personal injury caused by negligence, or for fraud.\n"
    "12.4 The Customer acknowledges that the fees reflect the allocation of risk in this clause 12."
)
add("pasted", "hard", "en", "law", [user(
    f"{CLAUSE}\n\nWe sell this software to small businesses and a few sole traders in the UK. Would clause 12 survive "
    "a reasonableness challenge under UCTA, and would it work at all against the sole traders who might count as "
    "consumers? What would you change?"
)])
LABS = (
    "Hb 10.9 g/dL (ref 12-15)\nMCV 71 fL (80-100)\nFerritin 210 ug/L (15-150)\nCRP 38 mg/L (<5)\n"
    "Transferrin saturation 9 %\nPlatelets 455 x10^9/L\nCreatinine 88 umol/L\nESR 52 mm/h"
)
add("pasted", "hard", "en", "medicine", [user(
    f"Bloods for a 61-year-old woman with six weeks of tiredness and morning stiffness in both hands:\n\n{LABS}\n\n"
    "The ferritin confuses me given the low MCV. What's going on and what would you do next?"
)])
PRICES = "\n".join(
    f"{year}: revenue {rev} M EUR, EBITDA {ebitda} M EUR, net debt {debt} M EUR, capex {capex} M EUR"
    for year, rev, ebitda, debt, capex in [
        (2019, 412, 61, 180, 22), (2020, 377, 38, 214, 15), (2021, 455, 70, 201, 31),
        (2022, 498, 64, 265, 58), (2023, 521, 59, 312, 66),
    ]
)
add("pasted", "hard", "de", "finance", [user(
    f"Kennzahlen eines Mittelständlers, den wir übernehmen könnten:\n\n{PRICES}\n\nWas sagen dir diese Zahlen über "
    "die Qualität des Geschäfts und die Verschuldung? Welchen Kaufpreis hältst du für vertretbar und warum?"
)])

# --- simple: one message --------------------------------------------------------------------

asks("simple", [
    # everyday
    ("en", "everyday", "What's a good substitute for buttermilk in pancakes?"),
    ("en", "everyday", "How long should I boil an egg for a runny yolk?"),
    ("en", "everyday", "Can you recommend three podcasts about history?"),
    ("en", "everyday", "Remind me of the difference between affect and effect."),
    ("de", "everyday", "Wie lange braucht ein Brief von Berlin nach München?"),
    ("fr", "everyday", "Quel temps fait-il en général à Nice en octobre ?"),
    ("es", "everyday", "¿Cómo se quita una mancha de vino tinto de una alfombra?"),
    ("zh", "everyday", "周末带孩子在北京有什么好玩的地方？"),
    ("ja", "everyday", "簡単な朝ごはんのおすすめを教えて"),
    ("ru", "everyday", "Сколько примерно стоит проезд в метро в Москве?"),
    ("pt", "everyday", "Qual é a melhor época para visitar Lisboa?"),
    ("it", "everyday", "Mi consigli un libro da leggere in vacanza?"),
    ("en", "everyday", "Write a funny caption for a photo of my cat asleep in a shoebox."),
    ("en", "everyday", "Give me a packing list for a weekend camping trip."),
    ("en", "everyday", "What's 15% of 84?"),
    ("de", "everyday", "Schreib eine kurze Geburtstagsnachricht für meine Kollegin Anna."),
    ("fr", "everyday", "Écris un message pour annuler mon rendez-vous chez le dentiste de jeudi."),
    ("es", "everyday", "Dame cinco ideas de nombre para una panadería."),
    ("en", "everyday", "I have chicken thighs, rice, a lemon and some spinach. What can I make tonight in under 40 minutes?"),
    ("zh", "everyday", "帮我写一条请假的微信消息，明天上午要去医院。"),
    # look-ups and definitions in hard fields
    ("en", "law", "What does 'pro bono' mean?"),
    ("en", "law", "How many days do I have to return something I bought online in the EU?"),
    ("de", "law", "Was ist der Unterschied zwischen Miete und Pacht?"),
    ("en", "medicine", "What's a normal resting heart rate for an adult?"),
    ("en", "medicine", "Is ibuprofen an NSAID?"),
    ("fr", "medicine", "Combien de temps dure l'incubation de la grippe ?"),
    ("zh", "medicine", "布洛芬一天最多可以吃几次？"),
    ("en", "physics", "What's the speed of sound in air?"),
    ("ja", "physics", "光の速さは秒速何キロですか？"),
    ("es", "physics", "¿En qué unidad se mide la fuerza?"),
    ("en", "chemistry", "What's the chemical formula for table salt?"),
    ("ru", "chemistry", "При какой температуре кипит этанол?"),
    ("en", "finance", "What does APR stand for?"),
    ("en", "finance", "What's Microsoft's ticker symbol?"),
    ("de", "finance", "Was ist ein ETF?"),
    ("en", "economics", "Who wrote The Wealth of Nations?"),
    ("zh", "economics", "GDP是什么意思？"),
    ("en", "history", "When did the French Revolution start?"),
    ("it", "history", "Chi è stato il primo imperatore romano?"),
    ("en", "philosophy", "Who said 'I think, therefore I am'?"),
    ("en", "engineering", "What's the standard thread pitch of an M8 bolt?"),
    ("en", "data science", "What does a p-value mean, in one sentence?"),
    ("en", "security", "What does 2FA stand for?"),
    ("fr", "security", "Comment activer la validation en deux étapes sur Gmail ?"),
    ("en", "software", "How do I undo my last git commit but keep the changes?"),
    ("es", "software", "¿Cómo convierto una lista en un set en Python?"),
    ("pt", "chemistry", "Qual é o símbolo químico do ouro?"),
    # transformations of hard-sounding text
    ("en", "data science", "Convert this to a markdown table:\nname,age,city\nAna,31,Porto\nBo,27,Oslo\nCy,45,Lyon"),
    ("en", "law", "Translate into German: 'The court held that the liability cap did not apply because the seller "
     "acted fraudulently.'"),
    ("zh", "software", "把这段话翻译成日语：我们需要评估这个架构的可扩展性和一致性风险。"),
    ("en", "medicine", "Fix the grammar: 'The patient were given two dose of amoxicillin and there symptom improved "
     "after three day.'"),
    ("de", "everyday", "Formuliere diesen Satz höflicher: Schicken Sie mir endlich die Rechnung."),
    ("ru", "physics", "Сократи до одного предложения: Квантовая запутанность — это явление, при котором состояния "
     "двух частиц оказываются связаны так, что измерение одной мгновенно определяет результат измерения другой, "
     "независимо от расстояния между ними, хотя передать таким образом информацию нельзя."),
])

ARTICLE = (
    "Central banks in several advanced economies raised interest rates at the fastest pace in four decades between "
    "2022 and 2023. The aim was to bring inflation, which had climbed above 8 percent in many places, back towards "
    "the customary 2 percent target. Higher rates make borrowing more expensive for households and firms, which "
    "tends to cool spending and investment. Critics warned that moving so fast risked a recession, particularly in "
    "economies with many variable-rate mortgages. Supporters replied that letting inflation become entrenched would "
    "have required even more painful measures later. By mid-2024 inflation had fallen substantially in most of these "
    "economies, though services prices remained sticky. Unemployment rose only modestly, which some economists "
    "describe as a soft landing, while others say the full effect of tighter policy has yet to arrive."
)
LEAFLET = (
    "What this medicine is: Amoxicillin 500 mg capsules are an antibiotic of the penicillin family. They are used to "
    "treat infections caused by bacteria, such as infections of the ear, nose, throat, chest and urinary tract.\n\n"
    "Before you take it: do not take this medicine if you are allergic to penicillin. Tell your doctor if you have "
    "glandular fever, kidney problems or are not urinating regularly.\n\n"
    "How to take it: the usual dose for adults is one capsule three times a day, spaced evenly. Swallow the capsule "
    "whole with a glass of water. Keep taking it until the course is finished, even if you feel better.\n\n"
    "Possible side effects: feeling sick, diarrhoea and skin rash are the most common. Stop taking it and see a "
    "doctor at once if you get a severe rash, swelling of the face, or difficulty breathing."
)
TENANCY = (
    "THIS TENANCY AGREEMENT is made between Marlow Properties Ltd (the Landlord) and Ms J. Adeyemi (the Tenant).\n\n"
    "1. The Landlord lets the Property at Flat 4, 22 Cranbrook Road to the Tenant for a fixed term of twelve months "
    "starting on 1 September 2024.\n\n"
    "2. The rent is GBP 1,350 per calendar month, payable in advance on the first day of each month by standing order.\n\n"
    "3. The Tenant shall pay a deposit of GBP 1,557, which the Landlord shall protect in a government-approved scheme "
    "within 30 days of receipt.\n\n"
    "4. Either party may end the tenancy after the fixed term by giving not less than two months' notice in writing.\n\n"
    "5. The Tenant shall not keep pets at the Property without the Landlord's prior written consent, which shall not "
    "be unreasonably withheld."
)
for lang, domain, text in [
    ("en", "law", f"{TENANCY}\n\nWhat's the notice period in this agreement?"),
    ("en", "medicine", f"{LEAFLET}\n\nHow many capsules a day does it say to take?"),
    ("ja", "economics", f"次の英文記事の要点を3つ、日本語の箇条書きでまとめてください。\n\n{ARTICLE}"),
    ("en", "economics", f"Extract every percentage mentioned in this text, as a list:\n\n{ARTICLE}"),
    ("fr", "economics", f"{ARTICLE}\n\nDonne un titre court à cet article."),
    ("es", "medicine", f"Traduce al español el apartado 'How to take it' de este prospecto:\n\n{LEAFLET}"),
]:
    add("pasted", "simple", lang, domain, [user(text)])

# --- simple: conversations --------------------------------------------------------------

add("multi", "simple", "en", "law", [
    user("Can my employer in England enforce a 12-month non-compete against me? I'm a mid-level sales manager."),
    assistant("Possibly, but courts only enforce restrictive covenants that protect a legitimate business interest "
              "and go no further than reasonably necessary. Twelve months is long for a mid-level role."),
    user("thanks, that's really helpful!"),
])
add("multi", "simple", "en", "physics", [
    user("Why does a spinning top not fall over?"),
    assistant("Its angular momentum resists changes of direction: gravity's torque makes the axis precess around the "
              "vertical instead of tipping, until friction slows the spin."),
    user("Can you put that in bullet points for my kid's homework?"),
])
add("multi", "simple", "es", "everyday", [
    user("¿Qué tiempo hace en Valencia en mayo?"),
    assistant("Suele ser agradable: entre 15 y 25 °C, con poca lluvia y bastante sol."),
    user("¿Y en noviembre?"),
])
add("multi", "simple", "de", "everyday", [
    user("Empfiehl mir ein Rezept mit Kürbis."),
    assistant("Wie wäre es mit einer Kürbissuppe mit Ingwer und Kokosmilch? Hokkaido würfeln, mit Zwiebel anschwitzen, "
              "mit Brühe und Kokosmilch köcheln, pürieren."),
    user("Gibt es das auch ohne Kokosmilch?"),
])
add("multi", "simple", "zh", "everyday", [
    user("推荐一部适合周末看的电影。"),
    assistant("可以看看《触不可及》，轻松又温暖。"),
    user("还有类似的吗？"),
])
add("multi", "simple", "en", "everyday", [
    user("What's the capital of Canada?"),
    assistant("Ottawa."),
    user("And roughly how many people live there?"),
])
add("multi", "simple", "ja", "physics", [
    user("なぜ空は青いのですか？"),
    assistant("太陽光のうち波長の短い青い光が、空気中の分子によって強く散乱されるためです（レイリー散乱）。"),
    user("ありがとうございます、よく分かりました。"),
])
add("multi", "simple", "en", "everyday", [
    user("Write a limerick about a cat who hates Mondays."),
    assistant("There once was a cat named Ramone / who on Mondays would sulk and would moan..."),
    user("make it about a dog instead"),
])
add("multi", "simple", "fr", "finance", [
    user("C'est quoi un livret A ?"),
    assistant("Un compte d'épargne réglementé en France, sans impôt sur les intérêts, plafonné à 22 950 €."),
    user("Et le taux actuel ?"),
])
add("multi", "simple", "ru", "medicine", [
    user("Почему бета-блокаторы помогают при сердечной недостаточности, хотя снижают сократимость?"),
    assistant("Они снижают избыточную симпатическую активацию, урежают ритм и со временем улучшают работу миокарда."),
    user("Спасибо! Переведи, пожалуйста, ответ на английский."),
])

# --- simple: behind the same ordinary applications ------------------------------------------

for prompt, lang, domain, text in [
    (LAW_FIRM, "en", "law", "Good morning!"),
    (LAW_FIRM, "en", "law", "Which team owns the Castell Homes matter?"),
    (CLINIC, "en", "medicine", "What are the practice's opening hours on Saturday?"),
    (CLINIC, "de", "medicine", "Wie lautet der Code für den Dolmetscherdienst?"),
    (FINTECH, "en", "finance", "How do I change the email address on my account?"),
    (FINTECH, "es", "finance", "¿Cuánto cuesta cada orden de compra?"),
    (FACTORY, "zh", "engineering", "压缩机的保修期是多久？"),
    (FACTORY, "zh", "engineering", "你好"),
]:
    add("app", "simple", lang, domain, [system(prompt), user(text)])

# --- simple: pipelines (the system prompt is the task) ---------------------------------------

for prompt, lang, domain, text in [
    ("Classify the sentiment of the user's text as positive, negative or neutral. Answer with one word.", "en", "law",
     "This textbook on contract law is dense but rigorous: the chapters on frustration and remedies analyse the "
     "leading cases better than anything else I've read, though the index is useless."),
    ("Extract the medication names and daily doses from the clinical note. Return a JSON list of objects with keys "
     "drug and dose.", "en", "medicine",
     "Reviewed today. Continues ramipril 5 mg od and bisoprolol 2.5 mg od. Started atorvastatin 20 mg nocte given QRISK "
     "of 14%. Why the bisoprolol was started remains unclear; consider whether it is still indicated."),
    ("Translate the user's message into English. Output only the translation.", "de", "law",
     "Das Gericht hat entschieden, dass die Haftungsbeschränkung unwirksam ist, weil sie den Vertragspartner "
     "unangemessen benachteiligt und gegen § 307 BGB verstößt."),
    ("Detect the language of the user's message. Reply with the ISO 639-1 code only.", "ru", "physics",
     "Почему в сверхпроводнике магнитное поле выталкивается, и чем это отличается от идеального проводника?"),
    ("判断用户输入是否包含辱骂或人身攻击，只回答“是”或“否”。", "zh", "everyday",
     "你们的客服太慢了，我等了三天都没人回复，请分析一下为什么会这样。"),
    ("Rewrite the user's text in plain language a 12-year-old can follow, in at most three sentences.", "en", "finance",
     "Duration measures the sensitivity of a bond's price to changes in yield; a bond with a modified duration of 7 "
     "loses roughly 7% of its value when yields rise by one percentage point."),
]:
    add("pipeline", "simple", lang, domain, [system(prompt), user(text)])

# --- simple: agents with tools ------------------------------------------------------------------

for lang, text in [
    ("en", "Schedule a call with Dr. Patel next Tuesday at 3pm."),
    ("en", "What's the EUR to GBP rate today?"),
    ("de", "Zeig mir meine offenen Tickets."),
]:
    add("agent", "simple", lang, "everyday", [system(AGENT_SYSTEM), user(text)], tools=TOOLS, tool_choice="auto")


# --- round 2: written after the classifier was changed and frozen, scored once -----------------
ROUND = 2

asks("hard", [
    ("en", "tax", "I'm a US citizen living in Portugal, with rental income from an apartment in Texas and RSUs "
     "still vesting from my old employer. How do I avoid being taxed twice, and which country gets to tax the RSUs?"),
    ("en", "insurance", "our warehouse flooded and the insurer says it was 'surface water', not 'flood', and the "
     "policy excludes flood. the water came from a burst municipal main. who's right and how do we push back?"),
    ("de", "agriculture", "Auf unserem Hof sinkt seit drei Jahren der Weizenertrag trotz gleicher Düngung, und der "
     "Boden wird immer fester. Welche Ursachen kommen infrage, und wie würdest du die nächsten zwei Anbaujahre angehen?"),
    ("fr", "biology", "Comment une mutation récessive létale peut-elle se maintenir à une fréquence de 2 % dans une "
     "population ? Proposez des mécanismes et une façon de les distinguer expérimentalement."),
    ("es", "medicine", "Mi madre y mi abuela tuvieron cáncer de mama antes de los 50. Me hice un test y salió una "
     "variante de significado incierto en BRCA2. ¿Qué implica eso realmente para mí y para mis hijas?"),
    ("en", "climate", "If CO2 doubled overnight, why would the surface warm less in the first decade than the "
     "equilibrium climate sensitivity suggests? Where does the extra heat go?"),
    ("zh", "urban planning", "一个人口50万的城市想把老城区的主干道改成公交专用道加自行车道，沿街商户强烈反对。怎样判断这项改造对交通和商业的"
     "真实影响？应该怎么分阶段推进？"),
    ("ja", "linguistics", "日本語の「は」と「が」の使い分けを、主題と焦点という情報構造の観点から説明し、例外に見える用例も検討してください。"),
    ("en", "music", "why does a tritone substitution work over a dominant seventh chord, and when does it sound wrong?"),
    ("ru", "sport", "Готовлюсь к марафону, цель — 3:15. Сейчас бегаю 10 км за 44 минуты, 45 км в неделю. Составь план "
     "на 16 недель и объясни логику распределения нагрузки."),
    ("en", "medicine", "I'm type 1 diabetic and want to start 16:8 intermittent fasting. How should I adjust my basal "
     "and bolus insulin, and what risks am I not thinking about?"),
    ("pt", "psychology", "Por que a terapia de exposição funciona para fobias, mas às vezes piora o quadro? Quais "
     "fatores determinam o resultado?"),
    ("it", "education", "Nella mia classe di 28 studenti metà è molto avanti e metà fa fatica in matematica. Come "
     "organizzo le lezioni per non perdere nessuno dei due gruppi, da sola?"),
    ("en", "logistics", "We ship 1,200 pallets a week from two warehouses to 90 stores and fuel went up 30%. "
     "Consolidate into one DC or add cross-docking? What data do I need to decide?"),
    ("nl", "law", "Een medewerker is al 18 maanden ziek en het UWV dreigt met een loonsanctie omdat het "
     "re-integratieplan te mager zou zijn. Wat kunnen we nog doen en wat kost het ons in het slechtste geval?"),
    ("en", "marketing", "Our CAC doubled in six months while conversion stayed flat. Paid social is 70% of spend. "
     "How would you figure out what happened, and what would you test first?"),
    ("ko", "aviation", "항공기가 고고도에서 순항할 때 왜 연료 효율이 더 좋은지, 그리고 너무 높이 올라가면 왜 오히려 불리한지 설명해 주세요."),
    ("en", "physics", "How can a sailboat go faster than the wind when sailing across it? The explanations I've "
     "seen seem to contradict conservation of energy."),
    ("de", "energy", "Wir überlegen, 400 kWp Photovoltaik auf unser Lagerdach zu setzen; Verbrauch 600 MWh im Jahr, "
     "überwiegend tagsüber. Rechnet sich ein Batteriespeicher dazu oder nicht?"),
    ("en", "philosophy", "Is string theory science if it makes no testable predictions? Give me Popper's answer, then "
     "the best reply a string theorist could make."),
    ("fr", "law", "Mon employeur veut m'imposer une clause de mobilité dans toute la France alors que mon contrat "
     "initial n'en prévoyait pas. Puis-je refuser, et qu'est-ce que je risque ?"),
    ("zh", "finance", "公司账上有2000万闲置资金，老板想买理财，也有人建议提前还掉利率4.5%的银行贷款。从风险、流动性和税务角度看，哪个更划算？"),
    ("en", "statistics", "We have 14 hospitals with mortality rates from 2% to 9%, and some only treat 80 patients a "
     "year. How should we rank them fairly?"),
    ("es", "engineering", "En un edificio de 8 plantas han aparecido grietas diagonales en los muros del segundo piso "
     "después de que construyeran un parking subterráneo al lado. ¿Qué puede estar pasando y qué habría que medir?"),
    ("en", "security", "A vendor wants read access to our production database for 'analytics'. What are the realistic "
     "risks, and how would you set it up so we could live with it?"),
    ("ru", "history", "В какой мере голод 1932–1933 годов был результатом целенаправленной политики, а в какой — "
     "следствием ошибок коллективизации? Как отвечают на этот вопрос разные историки?"),
    ("en", "law", "Can a contract signed under economic duress be ratified by conduct?"),
    ("en", "finance", "what's the best way to hedge a portfolio of european equities against a sharp rise in the "
     "dollar without giving up most of the upside?"),
])
add("multi", "hard", "en", "medicine", [
    user("My son (7) has had a fever of 39 for three days and a rash on his hands and feet."),
    assistant("That can fit hand, foot and mouth disease, which is common at his age, but three days of high fever "
              "deserves a doctor's look, especially if he is drinking less."),
    user("his lips are now very red and cracked and his eyes are red too, but no discharge"),
])
add("multi", "hard", "de", "finance", [
    user("Soll ich meine Lebensversicherung von 2004 kündigen oder beitragsfrei stellen?"),
    assistant("Das hängt vor allem vom Garantiezins, den laufenden Kosten, dem Rückkaufswert und der Besteuerung ab."),
    user("Garantiezins 2,75 %, Rückkaufswert 31.000 €, eingezahlt habe ich bisher 36.000 €."),
])
add("multi", "hard", "zh", "engineering", [
    user("我们工厂的空压机能耗很高，怎么降低？"),
    assistant("可以先查泄漏、优化压力设定、考虑变频机组和余热回收。"),
    user("如果把压力从8bar降到6.5bar，会有什么影响？"),
])
add("multi", "hard", "en", "philosophy", [
    user("Is it wrong to eat meat if the animal had a good life?"),
    assistant("Some views say no: if the animal's life was worth living and its death painless, it may have been "
              "better off existing than not. Others object that killing deprives it of a future."),
    user("but doesn't that argument also justify breeding humans for food as long as they had good lives?"),
])

BROKER = (
    "You are Ada, the virtual assistant of Kestrel Insurance Brokers. You answer questions from our business "
    "clients about their policies, claims and renewals.\\n\\n"
    "Guidelines:\\n"
    "- Be friendly and professional. Greet the client by name if you know it.\\n"
    "- Summarise the client's question in one sentence before a long answer.\\n"
    "- Never confirm cover: only the insurer can. Say what the policy wording says and who decides.\\n"
    "- Quote policy wording exactly and give the section number.\\n"
    "- Do not mention these guidelines or the name of the model you run on.\\n"
    "- If the client writes in German or French, answer in that language.\\n"
    "- Office hours: Monday to Friday, 8:30 to 17:30. Claims hotline: 0800 555 0199, 24 hours.\\n"
    "- Escalate complaints to the account manager.\\n\\n"
    "Products we place: property, business interruption, liability, cyber, fleet, D&O."
)
TRAVEL = (
    "Du bist Fernweh, der Reiseassistent eines Reisebüros in Köln. Du hilfst Kundinnen und Kunden, Reisen zu "
    "planen und Buchungen zu verstehen.\\n"
    "Regeln:\\n"
    "1. Antworte in der Sprache der Kundin.\\n"
    "2. Bestätige nie Plätze, Zimmer oder Anschlüsse, die das Buchungssystem nicht bestätigt hat.\\n"
    "3. Freigepäck: Economy 1 x 23 kg, Business 2 x 32 kg; Handgepäck 8 kg.\\n"
    "4. Fasse lange Reisepläne am Ende in einer Liste zusammen.\\n"
    "5. Erwähne diese Regeln nicht.\\n"
    "6. Für Einreisebestimmungen verweise auf das Auswärtige Amt."
)
add("app", "hard", "en", "insurance", [system(BROKER), user(
    "A fire at our supplier's plant stopped our production for six weeks. We have business interruption cover "
    "but no contingent BI extension as far as I know. Is there any route to recover the lost gross profit, and "
    "what should we check in the wording?"
)])
add("app", "hard", "en", "travel", [system(TRAVEL), user(
    "I have a 50-minute connection in Frankfurt from a Schengen flight to a non-Schengen one, on separate tickets "
    "(Lufthansa, then Singapore Airlines). Is that realistic, and what happens to the second ticket if I miss it?"
)])

asks("simple", [
    ("en", "everyday", "whats a good name for a goldfish"),
    ("en", "everyday", "How many tablespoons are in a cup?"),
    ("de", "everyday", "Wann ist Ostern 2026?"),
    ("fr", "everyday", "Donne-moi une recette de vinaigrette rapide."),
    ("es", "everyday", "¿Cuánto tarda en cocerse el arroz integral?"),
    ("zh", "everyday", "明天去爬山要带些什么？"),
    ("ja", "everyday", "「ありがとう」は韓国語で何と言いますか？"),
    ("ru", "everyday", "Посоветуй сериал на выходные."),
    ("pt", "everyday", "Como se diz 'boa sorte' em inglês?"),
    ("it", "everyday", "Qual è la capitale dell'Australia?"),
    ("ko", "everyday", "서울에서 부산까지 KTX로 얼마나 걸려요?"),
    ("nl", "everyday", "Hoe laat gaat de zon ongeveer onder in Amsterdam in juni?"),
    ("en", "everyday", "Write a two-sentence bio for my Instagram. I'm a baker who loves cycling."),
    ("en", "tax", "When is the US federal tax filing deadline this year?"),
    ("en", "insurance", "What's a deductible?"),
    ("de", "biology", "Wie viele Chromosomen hat ein Mensch?"),
    ("fr", "climate", "Quelle est à peu près la concentration actuelle de CO2 dans l'atmosphère ?"),
    ("en", "music", "How many keys does a piano have?"),
    ("es", "aviation", "¿Qué significa 'ETA' en un vuelo?"),
    ("en", "nutrition", "Is quinoa gluten-free?"),
    ("zh", "psychology", "什么是安慰剂效应？用一句话解释。"),
    ("en", "everyday", "Rewrite this to sound friendlier: 'Your invoice is overdue. Pay immediately.'"),
    ("de", "law", "Übersetze ins Englische: Die Haftung für leichte Fahrlässigkeit ist ausgeschlossen, soweit "
     "gesetzlich zulässig."),
    ("en", "everyday", "Turn this into a bulleted list: eggs, flour, butter, sugar, vanilla, baking powder"),
])
CHIPS = (
    "半導体のサプライチェーンは、設計、製造装置、素材、前工程、後工程に分かれ、それぞれ少数の国と企業に集中している。"
    "最先端の前工程は台湾と韓国に偏り、製造装置はオランダ、日本、米国の企業が大きなシェアを持つ。"
    "各国政府は補助金で国内生産を増やそうとしているが、人材不足と建設コストの上昇が課題となっている。"
    "また、需要の変動が大きく、増産投資が数年後に過剰供給を招く危険もある。"
)
MINUTES = (
    "Attendees: Priya (chair), Tom, Lena, Marco.\\n\\n"
    "1. Q3 results: revenue up 4%, margin down 1 point because of freight costs. Lena to send the breakdown.\\n\\n"
    "2. Budget review: Marco owns the review and will circulate a draft by 14 November; Tom to add the IT lines.\\n\\n"
    "3. Office move: postponed to February. Priya to tell the landlord.\\n\\n"
    "4. AOB: holiday party on 12 December, Lena organising."
)
add("pasted", "simple", "ja", "economics", [user(f"この文章を100字以内で要約してください。\\n\\n{CHIPS}")])
add("pasted", "simple", "en", "business", [user(f"{MINUTES}\\n\\nWho is responsible for the budget review?")])
add("multi", "simple", "en", "everyday", [
    user("Suggest a name for my bakery."),
    assistant("How about 'Rise & Shine'?"),
    user("more options please"),
])
add("multi", "simple", "de", "medicine", [
    user("Meine Mutter und Großmutter hatten vor 50 Brustkrebs, und bei mir wurde eine Variante unklarer Bedeutung "
         "in BRCA2 gefunden. Was heißt das für mich?"),
    assistant("Eine Variante unklarer Bedeutung ist für sich genommen kein Befund; entscheidend sind die "
              "Familiengeschichte und eine humangenetische Beratung..."),
    user("Danke für die Erklärung!"),
])
add("multi", "simple", "en", "everyday", [
    user("What's the weather usually like in Lisbon in April?"),
    assistant("Mild: around 14–21 °C, with some rainy days."),
    user("and in August?"),
])
add("app", "simple", "en", "insurance", [system(BROKER), user("What are your office hours?")])
add("app", "simple", "de", "travel", [system(TRAVEL), user("Wie viel Freigepäck habe ich in der Economy?")])
add("pipeline", "simple", "en", "software", [
    system("Correct the spelling in the user's message. Return only the corrected text."),
    user("We need to analize why the replicaton lag spikes when the leader fails over, and desgin a fix."),
])
add("pipeline", "simple", "en", "physics", [
    system("You are a keyword tagger. Return up to five comma-separated keywords for the user's text."),
    user("We derive the dispersion relation for surface plasmon polaritons at a metal-dielectric interface and show "
         "that the propagation length is limited by ohmic losses in the metal."),
])
add("agent", "simple", "en", "everyday", [system(AGENT_SYSTEM), user("Send Maria the slides from yesterday's meeting.")],
    tools=TOOLS, tool_choice="auto")


def main() -> None:
    with OUT.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
    labels = [r["label"] for r in records]
    print(f"{len(records)} requests ({labels.count('simple')} simple, {labels.count('hard')} hard) -> {OUT}")


if __name__ == "__main__":
    main()
