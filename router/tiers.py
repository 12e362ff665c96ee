"""Which tier a chat request needs: economy, standard or premium, decided in microseconds.

A route may map a client-facing model to a tier set (``economy``, ``standard``,
``premium``); :func:`classify` picks the tier per request from the request
alone — no model call, no network, no state — so the cheap model takes the
simple majority and the premium one what needs it.

How it judges (read with ``benchmarks/tiers/``: the labelled set, the script
that scores this module against it, and the figures):

* **The ask, not the payload.** The current ask is the last user message.
  Pasted material is set aside: fenced code, and in a long message everything
  but its first and last short paragraphs (only the one that points at the
  material — "the article below", "this review" — when just one does); after
  a head such as ``Translate this:`` whose intent is simple, the text after
  the colon; and anything in quotes. What is left is some 700 characters at
  most, whatever was pasted, which bounds the work. Tools,
  ``response_format``, images and context size never count: they are
  capability filters, handled elsewhere.
* **Intent signals**, each a lexicon in English, Chinese, Spanish, German,
  French, Japanese and Russian (some Portuguese, Italian, Korean), counted
  once however often they hit. Up: proofs (3), designs (2.5), analysis,
  diagnosis and trade-offs, algorithms, concurrency and distributed-systems
  trouble (2 each), step-by-step derivations, mathematics, implementation
  (1.5); and the weaker why, what-if, how-do-we, which-option, estimate or
  calculate, is-it-worth or does-it-make-sense, arguments and objections,
  "sometimes" or "twice", and a technical subject — software, sciences,
  medicine, law, finance — named in a non-trivial ask (1 each, 1.5 when
  dense). Down: translate (−4), reformat or a small edit, small talk (−3),
  classify or extract (−2.5), summarise or a one-word answer (−2), a short
  note (−1.5).
* **Language-neutral signals**: mathematical notation (∫ ∑ √ ≤ ℝ ², LaTeX,
  ``f(x) =``, ``n!``, exponents on variables), big-O, quantities with units
  (``2M rps``, ``50 TB``, ``p99``, ``250 km/h``) as constraints, pasted code
  with an open question; and the shape of an open ask (one with no simple
  intent), which carries over to fields and phrasings no lexicon lists: its
  length in tokens (+0.5 from 30, +1 from 60), several questions (+0.5),
  and specific terms — acronyms and codes such as ``TSH``, ``SGLT2``,
  ``401(k)``, or words of 13 letters or more (+0.5 from three). A first ask
  of 20 tokens or fewer with no strong signal is a look-up (−1).
* **The conversation.** Earlier user turns are scored the same way, from
  their asks only (the two ends of each turn are read, pasted material never
  is). A follow-up to a conversation with a problem in it (an open or
  technical earlier ask) is not penalised for being short (``and why?``
  after a proof is still hard): it takes the hardest of the last few turns
  when it has no signal of its own or a weaker one (one point less when it
  is long), and a probing follow-up in a technical conversation gets +1. A
  short ask after small talk, look-ups and small edits is judged as a first
  ask. A follow-up whose own intent is simple (``thanks``, ``that's all``,
  ``translate your answer``) or that announces a new topic stands on its own.
* **Pipelines.** A system prompt whose task statement — its opening
  sentences — is a simple task ("Classify the sentiment of the user's text.
  Answer with one word.") makes the user message material: its hard signals
  count a third, and the score drops by 3. An application's prompt opens
  with a persona and a purpose; the simple verbs in its rules ("acknowledge
  it in one sentence", "do not mention these instructions") do not make it a
  pipeline.

The weights add up to a score: ``premium`` at or above :data:`PREMIUM_AT`
(one weak signal in an ask that is not a look-up, or a detailed ask with
some structure), ``economy`` below :data:`ECONOMY_BELOW` (simple evidence, or
a short look-up), and in the band between the classifier abstains and sends
the request to ``standard``. The reason names the signals that decided, for
logs and headers.

Limits, measured (benchmarks/tiers/README.md): the targets are met on the
labelled set, which the rules were tuned on. On requests written after the
rules were frozen they are not: the last such batch (``fresh.jsonl``, round
2) sent 65% of its hard requests to premium and 9% to economy, and 9% of its
simple ones to premium. A lexicon covers the fields it was written for; the
shape signals reach further, but not all the way. Routes that know their
traffic should add rules.

:func:`rule_tier` applies a route's "system prompt contains X ⇒ tier" rules,
which the proxy consults before the classifier (after an explicit
``x-modelroute-tier`` request header).
"""

# ruff: noqa: RUF001, RUF002  (the lexicons and examples are Chinese, Japanese, Russian... on purpose)
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from modelroute.router.tokens import text_tokens

__all__ = ["ECONOMY_BELOW", "PREMIUM_AT", "Tier", "TierDecision", "classify", "rule_tier"]

Tier = Literal["economy", "standard", "premium"]

PREMIUM_AT = 1.0
ECONOMY_BELOW = 0.0

SHORT_ASK = 20  # tokens: this short with no strong signal, an ask is a look-up or small talk
FOLLOW_UP = 25  # tokens: this short, an ask is read in the context of the conversation
STRONG = 1.5  # a hard signal this heavy lifts the short-ask penalty
DETAILED_ASK = 30  # tokens of instruction (not material) from which an open ask counts as detailed
LONG_ASK = 60  # ...and as very detailed
SPECIFIC_TERMS = 3  # distinct acronyms, codes or long words from which an ask is specific
LONG_PROSE = 700  # characters: above this, only the end paragraphs of a message are the ask
SHORT_PARAGRAPH = 320
EDGE = 200  # characters kept from each end of a long message with no short end paragraph
SCAN_LIMIT = 16_384  # characters of a huge message looked at (its two ends)
HISTORY_TURNS = 3  # earlier user turns that give context
HISTORY_SCAN = 4096  # characters of an earlier user turn looked at (its two ends, where its ask is)
PIPELINE_DAMPING = 1 / 3
DENSE = {"math": 2, "technical subject": 3}  # distinct terms from which a subject counts as dense
TECHNICAL_FOLLOW_UP = 1.0  # a probing follow-up in a technical conversation
ANSWER_SCAN = 600  # characters of the previous answer looked at
TASK_STATEMENT = 300  # characters of a system prompt's opening sentences that state its task


@dataclass(frozen=True, slots=True)
class TierDecision:
    """The chosen tier, the score behind it, and a short reason for logs and headers."""

    tier: Tier
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class Signal:
    """A named intent with its weight and its terms.

    Terms are ``|``-separated: ``word`` matches a whole word (or phrase),
    ``stem*`` any word starting with it, and Chinese or Japanese terms match
    anywhere (those scripts do not separate words).
    """

    name: str
    weight: float
    terms: str
    short_only: bool = False  # counts only in a short ask (greetings inside a long ask mean little)
    min_tokens: int = 0  # counts only in an ask longer than this


HARD = (
    Signal("proof", 3.0, "prove|proves|proof|proofs|disprove|justify|derive|derivation|counterexample|show that"
           "|show why|sketch why|sketch a proof|convince me|argue why|argue that|argue optimality|demuestra|demuestre|demostrar"
           "|demostración|prueba que|justifica|beweise|beweis|beweisen|zeige, dass|zeige dass|zeigen sie|herleit*"
           "|démontre*|démonstration|prouve|prouver|prouvez|montre que|montrez que|montrer que|justifie*|докаж*|доказ*"
           "|выведи|покажи, что|покажите, что|обоснуй*|prove que|demonstre|dimostra*|证明|推导|証明|示せ|導出|증명"),
    Signal("design", 2.5, "design|designs|designing|architect*|how would you build|how would you design"
           "|how would you scale|how would you implement|migration plan|plan the migration|scalab*|diseña*|diseño"
           "|arquitectura|entwirf|entwerfen|architektur*|conçois|concevoir|concevez|conception|спроектир*|проектиров*"
           "|архитектур*|как бы вы построили|как бы ты построил|projetar|projete|projetaria|progett*|设计|架构|設計|アーキテクチャ|설계"),
    Signal("trade-offs", 2.0, "tradeoff|tradeoffs|trade-off|trade-offs|trade off|trade offs|pros and cons|weigh"
           "|evaluate|critique|analys*|analyz*|assess*|root cause|failure mode|failure modes|bottleneck*|diagnos*"
           "|investigat*|figure out|find out why|find out where|what caused|what causes|what could cause|what might cause"
           "|compare|comparing|comparison|risk|risks|impact|legal implications|legal position|legal consequences"
           "|impacto|implicaciones legales|auswirkung*|rechtslage|conséquences juridiques|situation juridique|влияни*"
           "|юридическ*|影响|法律后果|影響|法的|troubleshoot*|debug|debugging|depura*|отлад*|排查|デバッグ|장단점|분석|compara*|vergleich*|comparer|comparez|сравни*|сравнени*|比较|比較|ventajas y desventajas|compromisos|analiz*|análisis|cuello de botella"
           "|cuellos de botella|evalúa*|riesgo*|wäge|abwägen|abwägung|vor- und nachteile|bewerte*|untersuche*"
           "|analysier*|risiko*|risiken|avantages et inconvénients|compromis|évalue*|cause profonde|causes profondes"
           "|risque*|плюсы и минусы|компромисс*|анализ*|проанализ*|выясни*|оцени*|риск*|диагност*|analise|valuta"
           "|权衡|取舍|利弊|分析|评估|根本原因|风险|诊断|调查|トレードオフ|長所と短所|評価|原因を|リスク|診断|調査"),
    Signal("algorithm", 2.0, "algorithm*|complexity|big-o|big o|optimal|optimality|correctness|invariant*|amortized"
           "|linear time|lock-free|lock free|decidab*|undecidab*|np-hard|np-complete|pspace|algoritm*|complejidad"
           "|indecidible|komplexität|laufzeit|complexité|алгоритм*|сложност*|корректност*|算法|复杂度|アルゴリズム|計算量"
           "|알고리즘|복잡도|최적화|不可判定"),
    Signal("systems", 2.0, "deadlock*|race condition|concurren*|thread-safe|thread safe|linearizab*|consistency"
           "|consistent|partition*|exactly-once|exactly once|idempoten*|distributed|consensus|raft|paxos|replica*"
           "|failover|fail over|shard*|leak*|oom*|p99|latenc*|throughput|zero downtime|without downtime|crdt|crdts"
           "|slower|slowdown|performance regression|multiple processes|multi-process|multiple threads|multithread*|multi-thread*|lose messages|message loss|data loss|split brain|two-phase commit"
           "|interbloqueo|condición de carrera|concurrencia|consistencia|distribuid*|sobreventa|latencia|más lento"
           "|pierde mensajes|pérdida de datos|verklemm*|nebenläufig*|konsisten*|verteilt*|latenz*|langsamer"
           "|datenverlust|interblocage|cohérence|distribué*|latence*|plus lent|perte de données|perd des messages"
           "|взаимоблок*|гонк*|конкурент*|согласован*|распредел*|утечк*|отказоустойчив*|ровно один раз|задержк*"
           "|латентн*|медленн*|потеря данных|теряет сообщения|многопоточн*|multihilo|多线程|マルチスレッド|死锁|竞态|并发|一致性|分布式|泄漏|泄露|超卖|宕机|多活|延迟|变慢"
           "|丢消息|数据丢失|デッドロック|競合|並行|一貫性|分散|リーク|トランザクション|遅延|レイテンシ|遅く"),
    Signal("step by step", 1.5, "step-by-step|step by step|walk me through|walk through|show the numbers|show the math"
           "|show your math|列式|解答过程|计算过程|途中式|распиши|desarrolla|montre les calculs|show your work|show the steps"
           "|show the optimisation|show the optimization|explain each step|explain your reasoning|reasoning|in what order"
           "|rigorous*|in detail|paso a paso|explica el cálculo|schritt für schritt|detailliert*|étape par étape"
           "|en détaillant|en détail|пошагов*|шаг за шагом|подробно|passo a passo|一步一步|逐步|严格推导|说明理由|详细"
           "|ステップバイステップ|順を追って|段階的|詳しく"),
    Signal("math", 1.5, "theorem*|lemma*|integral*|derivative*|eigen*|matrix|matrices|diagonalis*|diagonaliz*"
           "|continuous|converge*|diverge*|limit of|recurrence*|polynomial*|prime|primes|divisible|modulo|vertices"
           "|vertex|bipartite|planar|irrational|infinitely many|probability|expected number|expected value"
           "|differential equation|maximise|maximize|minimise|minimize|significant at|statistically significant"
           "|sample size|combinator*|tiling|tiled|how many ways|how many integers|without replacement|real solutions"
           "|integer solutions|distribution|variance|independent|random variable*|standard deviation|dice roll|exponentials|such that|game theory|decision theory|puzzle|riddle|acertijo|rätsel|énigme|загадк*|谜题|パズル"
           "|binomial|permutation*|cyclic|isomorphi*|homomorphi*|teorema*|distribución|varianza|independientes|esperanza"
           "|tal que|teoría de juegos|mediana|sodass|so dass|spieltheorie|tel que|telle que|théorie des jeux|такое что"
           "|такой, что|теория игр|使得|博弈论|ゲーム理論|を満たす"
           "|verteilung|varianz|unabhängig*|erwartungswert|würfel*|indépendant*|espérance|cyclique|распределени*|дисперси*"
           "|независим*|матожидани*|математическое ожидание|кубик*|циклическ*|derivada*|matriz|probabilidad*|primo|primos|irracional|infinitos"
           "|función continua|cuántas formas|recurrencia|satz von|ableitung*|konvergier*|divergier*|grenzwert*"
           "|wahrscheinlichkeit*|primzahl*|primfaktor*|teilbar|differentialgleichung*|wie viele möglichkeiten"
           "|théorème*|intégrale*|dérivée*|matrice*|probabilité*|nombres premiers|irrationnel*|sous-suite"
           "|équation différentielle|de combien de façons|теорем*|интеграл*|производн*|матриц*|собственные значения"
           "|сходит*|сходимост*|предел*|вероятност*|простых чисел|простые числа|иррационал*|граф|графе|графа"
           "|вершин*|уравнени*|сколькими способами|primi|números primos|定理|积分|导数|矩阵|特征值|收敛|极限|概率|素数"
           "|质数|整除|无理数|无穷|分布|方差|期望|骰子|期待値|サイコロ|巡回群|積分|微分|行列|固有値|収束|極限|確率|無理数|彩色|무리수|方程|有多少种|何通り"),
    Signal("why", 1.0, "why|how come|what's wrong with|what is wrong with|was ist falsch|qu'est-ce qui ne va pas|что не так|por qué|porqué|warum|wieso|weshalb|woran|pourquoi|почему|зачем|отчего"
           "|perché|por que|mechanism|mechanisms|mecanismo*|mechanismus|mechanismen|mécanisme*|механизм*"
           "|为什么|为何|机制|なぜ|どうして|理由|メカニズム|仕組み|왜|원리"),
    Signal("intermittent or duplicated", 1.0, "sometimes|sporadic*|intermittent*|under load|flaky|randomly|twice"
           "|duplicate*|a veces|esporádic*|dos veces|duplicad*|doppi*|manchmal|sporadisch*|zweimal|doppelt*|parfois"
           "|de temps en temps|deux fois|en double|иногда|периодически|дважды|偶尔|有时|两次|重复|時々|毎回|たまに|二重|2回"),
    Signal("decision", 1.0, "should we|should i|which would you|which is better|what would you do"
           "|what would you pick|what would you build|what would you choose|deberíamos|sollten wir|devrions-nous"
           "|faut-il|стоит ли|следует ли|what are our options|what are my options|what are the options|qué opciones"
           "|welche optionen|quelles options|какие варианты|what are my arguments|what evidence|which makes more sense"
           "|qué argumentos|welche argumente|quels arguments|какие аргументы|strategy|strategies|estrategia*|strategie*|stratégie*"
           "|стратеги*|应该|有哪些选择|策略|战略|べきか|どうすれば|戦略|優先順位|전략"),
    Signal("hypothetical", 1.0, "what if|what happens if|what would happen|y si|qué pasa si|qué pasaría si|was passiert"
           "|was wäre, wenn|was wäre wenn|et si|que se passe-t-il si|что будет, если|что будет если|что если|а если"
           "|如果|要是|もし|だったら|한다면"),
    Signal("method question", 1.0, "how do we|how can we|how should we|how should i|how would i|how to ensure"
           "|how to guarantee|how to prevent|how to avoid|how do i make sure|what's the right way|what is the right way"
           "|efficiently|efficient|eficiente*|effizient*|efficace*|эффективн*|高效|効率|효율"
           "|the best way to|make sure that|ensure that|guarantee that|garantiz*|evitar que|asegurar que|cómo podemos"
           "|cómo deberíamos|wie können wir|wie sollten wir|wie stellen wir sicher|sicherstellen|verhindern"
           "|gewährleist*|comment garantir|comment éviter|comment s'assurer|garantir que|éviter que|как добиться"
           "|как обеспечить|как избежать|гарантировать|как быть с|如何保证|如何避免|如何确保|怎么保证|怎样保证|どう保つ|保証|防ぐ"),
    Signal("estimate", 1.0, "estimate|estimates|estimation|calculate|calculation|compute|quantify|work out"
           "|back-of-the-envelope|estim*|calcul*|berechne*|durchrechn*|abschätz*|рассчита*|вычисли*|прикин*"
           "|calcola*|计算|估算|算出|算一下|計算|見積|試算"),
    Signal("judgement", 1.0, "is it worth|worth it|does it make sense|does that make sense|would you recommend"
           "|what are my chances|how likely|how exposed|how strong|how risky|is it reasonable|is it sensible"
           "|lohnt sich|lohnt es sich|sinnvoll|vertretbar|vaut-il mieux|vaut le coup|est-il raisonnable"
           "|tiene sentido|conviene|vale la pena|es razonable|имеет ли смысл|разумно ли|целесообразн*"
           "|vale a pena|faz sentido|ha senso|值得|合理吗|是否合理|有必要|意味がある|価値がある|妥当"),
    Signal("argument", 1.0, "argument|arguments|objection|objections|counterargument*|evidence|historiograph*"
           "|critically|argumento|argumentos|objeción|objeciones|contraargumento*|einwand|einwände|gegenargument*"
           "|contre-argument*|аргумент*|возражени*|контраргумент*|论证|论据|反驳|反論|論証|根拠|argomento|argomenti"),
    Signal("implementation", 1.5, "implement|implementing|implementa*|implementier*|implémente*|реализуй*|实现|実装|구현"),
    Signal("advanced construct", 1.5, "parser|interpreter|compiler|scheduler|allocator|skip list|b-tree|lru"
           "|consistent hashing|rate limiter|rate-limiter|state machine|garbage collector|跳表|调度器|解析器"),
    Signal("technical subject", 1.0, "thread|threads|threading|lock|locks|locking|mutex*|semaphore*|atomic*|volatile"
           "|memory|heap|pointer*|garbage|cache|caches|caching|queue|queues|database*|schema*|query|queries|transaction*"
           "|tenant*|postgres*|mysql|redis|kafka|kubernetes|cluster*|node|nodes|server|servers|backend|api|apis"
           "|endpoint*|webhook*|handler*|retry|retries|timeout*|protocol*|tcp|udp|handshake*|packet*|socket*|kernel*"
           "|runtime|jvm|java|golang|c++|replication|snapshot*|bloom|hash|hashing|stream|streams|streaming|batch"
           "|pipeline*|microservice*|monolith*|deploy*|sql|nosql|orm|async*|cpu|encryption|tls|oauth|base de datos"
           "|hilo|hilos|bloqueo*|memoria|caché|consulta*|transacci*|servidor*|petición|reintent*|esquema*|datenbank*"
           "|speicher|warteschlange*|transaktion*|abfrage*|anfrage*|tabellen|schnittstelle*|base de données|mémoire|tas"
           "|file d'attente|requête*|serveur*|verrou*|базы данных|база данных|базе данных|памят*|очеред*|транзакци*"
           "|запрос*|сервер*|поток*|блокировк*|кэш*|консьюмер*|шардир*|数据库|缓存|线程|内存|队列|事务|服务器|接口|微服务"
           "|集群|索引|查询|熔断|限流|降级|消息队列|データベース|キャッシュ|スレッド|ロック|メモリ|キュー|サーバー|クエリ"
           "|インデックス|整合性|マイクロサービス|isolation|serializable|index|indexes|indexing|full-text|search engine"
           "|coroutine*|decorator*|backoff|jitter|goroutine*|channel*|frontend|react|render*|monorepo*|ci|vacuum|disk"
           "|storage|rollout*|breaking change|versioning|migration*|accuracy|overfitting|dataset*|auc|latent|índice*"
           "|rendimiento|escalab*|recolector de basura|réplica*|sincroniz*|index*|volltext*|komponente*|abrechnung*"
           "|ausfall*|ausfäll*|skalier*|indexation|plein texte|moteur de recherche|répliqu*|synchronis*|boucle"
           "|реплик*|синхрониз*|координатор*|индекс*|диск*|коммит*|производительност*|推荐系统|离线|线上|点击率|指标|模型"
           "|全局唯一|生成器|高可用|性能|瓶颈|モノレポ|実行時間|パフォーマンス|最適化|ボトルネック|非同期|동시성|데이터베이스"
           "|스레드|캐시|싱글톤|velocity|speed|acceleration|momentum|friction|voltage|capacit*|frequency|circuit*"
           "|wavelength|quantum|relativity|entangle*|redox|molar|molecule*|enzyme*|patient*|dose|dosage|interaction*"
           "|symptom*|contraindicat*|mortgage*|interest rate*|raising rates|rate hike*|inflation|cash flow"
           "|revenue recognition|monetary|central bank|ecb|equity|dilution|valuation|landlord*|lawsuit*|liability|court"
           "|statute*|jurisdiction*|contract|contracts|clause*|velocidad|aceleración|energía|frenado|frecuencia|circuito*"
           "|cuántic*|paciente*|dosis|interacci*|síntoma*|hipoteca*|tipo de interés|tasa de interés|inflación"
           "|flujo de caja|contrato*|tribunal*|geschwindigkeit*|beschleunigung|energie|frequenz*|grenzfrequenz"
           "|kondensator*|kapazität*|schaltung*|quanten*|wechselwirkung*|hypothek*|zins*|mieter*|vermieter*|miete"
           "|vertrag*|gericht*|vitesse|accélération|énergie|fréquence|quantique*|symptôme*|hypothèque*"
           "|taux d'intérêt|trésorerie|contrat*|bailleur|locataire*|скорост*|ускорени*|энерги*|частот*|квант*"
           "|пациент*|доз*|взаимодейств*|симптом*|ипотек*|ставк*|инфляци*|рубл*|договор*|速度|加速度|能量|频率|电路"
           "|电容|量子|患者|剂量|相互作用|症状|房贷|利率|通胀|现金流|合同|法院|金融危机|エネルギー|周波数|回路|光速|用量"
           "|住宅ローン|金利|インフレ|契約|裁判", min_tokens=SHORT_ASK),
)

SIMPLE = (
    Signal("translation", -4.0, "translat*|how do you say|how to say|traduc*|cómo se dice|übersetz*|wie sagt man"
           "|tradui*|traduire|comment dit-on|comment on dit|переведи*|перевод*|traduz*|tradur*|traduci"
           "|翻译|翻譯|译成|翻成|翻訳|訳して|英語に|英語で|日本語で|で何と言|번역"),
    Signal("summary", -2.0, "summar*|tl;dr|tldr|sum up|headline|title|minutes of|resume|resumen|resumir|resuma"
           "|titular|título|zusammenfass*|fasse|überschrift|titel|résume|résumer|résumé|titre|кратко|перескаж*|резюм*"
           "|заголов*|riassum*|总结|摘要|概括|标题|要約|まとめ|タイトル|요약"),
    Signal("classify or extract", -2.5, "classif*|categoris*|categoriz*|sentiment|label this|label each|label it"
           "|label the|extract*"
           "|action items|positive or negative|positive, negative|mention*|how many of these"
           "|clasific*|sentimiento|extrae*|extraer|positivo o negativo|positiva o negativa|klassifizier*"
           "|extrahier*|positiv oder negativ|stichpunkte|classe|classer|classifie*|extrai*|positif ou négatif"
           "|классифиц*|тональност*|извлеки*|извлечь|перечисли*|分类|情感|提取|抽取|正面|负面|分類|抽出|ポジティブ|ネガティブ"),
    Signal("reformat or small edit", -3.0, "reformat*|format this|format it|format as|formatier*|formatea*|indent*"
           "|pretty-print|pretty print|convert this|convert these|convert it|convert the|convert to|to yaml|to json"
           "|to csv|into yaml|markdown table|bullet points|bulleted list|bullet list|more polite|more formal|more professional|sort these|sort this|sort the|alphabetically|rename|typo|typos|spelling"
           "|grammar|proofread*|rephrase*|reword*|paraphrase*|shorten*|shorter|sound more|docstring|type hints|format that"
           "|syntax error|make it shorter|make it longer|make it a bit|add that|convierte*|ortografía|gramática"
           "|reescrib*|error de sintaxis|añade que|añadir que|konvertier*|wandle|tippfehler|rechtschreib*|grammatik"
           "|umformulier*|reformule*|faute de frappe|orthographe|grammaire|convertis*|отформатир*|преобразуй*"
           "|конвертир*|опечатк*|орфограф*|грамматик*|перефраз*|viñetas|puces|списком|更礼貌|礼貌一点|箇条書き|格式化|拼写|错别字|语法|改写这|改写一下|润色|整形|誤字|文法|変換"),
    Signal("short answer", -2.0, "one word|single word|yes or no|just the answer|just the number|just the label"
           "|just list|only the label|only the number|only the answer|label only|json only|in one sentence"
           "|in two sentences|one sentence|briefly|in simple terms|like i'm|eli5|una palabra|una frase|sí o no"
           "|ein wort|einem wort|ja oder nein|zwei sätzen|un mot|une phrase|oui ou non|одним словом|одном предложении"
           "|да или нет|一个词|一句话|只回答|简单解释|一言で|二文で|簡単に|한 단어"),
    Signal("small talk", -3.0, "hi|hello|hey|thanks|thank you|good morning|cheers|hola|gracias|hallo|danke|bonjour"
           "|merci|salut|привет|спасибо|olá|obrigado|obrigada|ciao|grazie|tell me a joke|joke"
           "|that's all|that is all|all i needed|got it|that helps|das reicht|c'est tout|eso es todo|это всё"
           "|你好|谢谢|在吗|就这些|こんにちは|ありがとう|안녕", short_only=True),
    Signal("short note", -1.5, "write a short|write a two-line|write a brief|write a polite|write a quick"
           "|short email|short message|short note|haiku|tagline|slogan|birthday|out-of-office|thank-you note"
           "|names for|mensaje corto|mensaje para|felicitar|kurze absage|petit mot|remerciement|поздравлени*"
           "|короткое|祝福|お礼|メッセージ"),
)

NEW_TOPIC = Signal("new topic", 0.0, "unrelated|different question|another question|new question|change of topic"
                   "|otra pregunta|andere frage|autre question|другой вопрос|另外一个问题|別の質問|話は変わ")
PIPELINE = Signal("system prompt is a simple task", -3.0, "reply with exactly one|reply with one|reply with the label"
                  "|one word|single word|yes or no|only the label|just the label"
                  "|reply with only|respond with only|respond only with|answer with one|you label|label each|answer allow|allow or block"
                  "|output json only|return json|json only|label only|extract the following|decide whether|classify"
                  "|categorize|categorise|translate the|translate every|translate all|you are a translator"
                  "|只输出|只回答|ラベルのみ")


def _has_cjk(term: str) -> bool:
    return any("\u3040" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af" for c in term)


def _trie(terms: Iterable[str]) -> str:
    """A regex alternation shaped as a trie, so matching tries one branch per character."""
    root: dict[str, Any] = {}
    for term in terms:
        node = root
        for char in term:
            node = node.setdefault(char, {})
        node[""] = {}

    def render(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + render(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            return f"(?:{body})?"
        return body

    return render(root)


class Lexicon:
    """Every term of a set of signals compiled into three trie regexes: words, stems, CJK."""

    __slots__ = ("cjk", "owner", "stems", "words")

    def __init__(self, signals: Iterable[Signal]) -> None:
        self.owner: dict[str, Signal] = {}
        words: list[str] = []
        stems: list[str] = []
        cjk: list[str] = []
        for signal in signals:
            for term in signal.terms.split("|"):
                kind = cjk if _has_cjk(term) else stems if term.endswith("*") else words
                term = term.rstrip("*")
                self.owner.setdefault(term, signal)  # a term listed twice belongs to its first signal
                kind.append(term)
        never = "(?!x)x"
        self.words = re.compile(rf"\b(?:{_trie(words) or never})(?!\w)")
        self.stems = re.compile(rf"\b(?:{_trie(stems) or never})")
        self.cjk = re.compile(_trie(cjk) or never)

    def find(self, text: str) -> dict[Signal, set[str]]:
        """The signals present in ``text`` (lower-cased, whitespace collapsed), with the terms that hit."""
        hits: dict[Signal, set[str]] = {}
        patterns = (self.words, self.stems) if text.isascii() else (self.words, self.stems, self.cjk)
        for pattern in patterns:
            for term in pattern.findall(text):
                hits.setdefault(self.owner[term], set()).add(term)
        return hits


INTENTS = Lexicon(HARD + SIMPLE)
ALGORITHM = next(s for s in HARD if s.name == "algorithm")
TOPIC = Lexicon((NEW_TOPIC,))
PIPELINE_TASK = Lexicon((PIPELINE,))
# A task a system prompt may state; "short answer" is left out: "answer briefly" is a style, not a task.
PIPELINE_INTENTS = frozenset(s for s in SIMPLE if s.name in {"translation", "summary", "classify or extract", "reformat or small edit"})
TECHNICAL = frozenset(
    s for s in HARD if s.name in {"proof", "design", "algorithm", "systems", "math", "technical subject", "advanced construct"}
)

# --- language-neutral signals ---------------------------------------------------------------
MATH_SYMBOL = re.compile(r"[∫∑∏√∞≤≥≠≡≈∀∃∈∉⊂⊆∂∇→⇒⇔↦ℝℕℤℚℂ²³⁴ⁿ∎]")
# Each alternative starts with its trigger character, so matching skips ahead to those characters.
MATH_ASCII = re.compile(
    r"\\(?:int|sum|frac|lim|sqrt|forall|exists|prod|infty|binom)\b"  # LaTeX
    r"|\^(?:(?<=\b[a-z]\^)|(?<=\b[a-z] \^))\s?[\w{(]|\^\s?[a-z{(]"  # x^2, 2^n
    r"|_(?<=\b[a-zA-Z]_)\{?[a-z0-9]"  # a_n, K_n
    r"|!(?<=\b[a-z]!)"  # n!
    r"|\((?<=\b[A-Za-z]\()[a-z0-9/ ]+\)\s?="  # f(x) =, T(n/2) =
    r"|\((?<=\b(?:sin|cos|tan|exp)\()|\((?<=\bln\()"
    r"|''(?<=\by'')|d[xy]\b(?<=\bd[xy])|log n\b(?<=\blog n)|\[\[[\d, ]+\],"
)
BIG_O = re.compile(r"\bO\((?:n|log|1\)|k|m|v|e\b)")
QUANTITY = re.compile(
    r"\d[\d.,]*\s?(?:k|m|b|tb|gb|mb|ms|s|%|x|rps|qps|tps|pp|vcpu|million|billion|km/h|km|mph|m/s|kg|mg|ml|°c|hours"
    r"|minutes|weeks|years|万|亿|億|млн|тыс|тб|миллион|小时|分钟|公里|时間|分)(?!\w)"
    r"|p9[59]\b(?<=\bp9[59])|\d[\d.,]*\s?(?:requests|writes|reads|users|players|services|events|messages|documents)",
    re.IGNORECASE,
)
QUESTION = re.compile(r"[?？]")
# Terms of art in any field and any Latin, Greek or Cyrillic script: acronyms and codes (TSH, GDPR,
# SGLT2, eGFR, 401(k)) and long words (levothyroxine, historiography, Kündigungsschutzklage).
_LETTER = "A-Za-zÀ-ɏͰ-ϿЀ-ӿ"
SPECIFIC_TERM = re.compile(
    rf"(?<![{_LETTER}\d])(?=[A-Za-z\d]*(?:[A-Z][a-z]*[A-Z]|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]))[A-Za-z\d]{{2,}}"
    rf"(?:\([a-z]\))?(?![{_LETTER}\d])|\d{{2,}}\([a-z]\)|[{_LETTER}]{{13,}}"
)
FENCE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
QUOTED = re.compile(r"\"[^\"\n]{2,}\"|“[^”]{2,}”|«[^»]{2,}»|「[^」]{2,}」|(?<![\w'])'[^'\n]{2,}'(?!\w)")
HEAD_COLON = re.compile(r"[:：]")
PARAGRAPHS = re.compile(r"\n\s*\n")
# An end paragraph that points at the material ("the article below", "this review") is the instruction.
_MATERIAL = "article|review|text|document|email|transcript|log|logs|contract|code|snippet|essay|paragraph|report|message"
POINTS_AT_MATERIAL = Lexicon((Signal("points at material", 0.0, "|".join([
    "below|following|above|siguiente|a continuación|anterior|folgende*|unten|oben|ci-dessous|ci-dessus|suivant*"
    "|ниже|выше|следующ*|下面|上面|以下|下記|上記|这篇|这条|这段|この記事|このレビュー|この文章",
    "este artículo|este texto|este correo|esta reseña|dieser artikel|diese bewertung|diesen text|diese mail"
    "|cet article|cet avis|ce texte|эту статью|этот отзыв|этот текст|эти логи",
    *(f"{d} {m}" for d in ("this", "these", "the") for m in _MATERIAL.split("|")),
])),))


@dataclass(slots=True)
class _Score:
    total: float = 0.0
    signals: dict[str, float] = field(default_factory=dict)
    simple_intent: bool = False
    technical: bool = False  # about a technical or mathematical subject (code, notation, technical terms)

    def add(self, name: str, weight: float) -> None:
        self.total += weight
        self.signals[name] = self.signals.get(name, 0.0) + weight


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


def _instruction(message: str, limit: int = SCAN_LIMIT) -> tuple[str, str, bool]:
    """Split a user message into (instruction head, text after its colon, has code): material set aside.

    Only the two ends of a message longer than ``limit`` are read; what is
    returned is at most a few hundred characters of prose (short end
    paragraphs, or the edges of a long one), so the lexicons never scan
    pasted material.
    """
    if len(message) > limit:
        message = message[: limit // 2] + "\n\n" + message[-limit // 2 :]
    code = "```" in message
    prose = FENCE.sub("\n\n", message).strip() if code else message.strip()
    if len(prose) > LONG_PROSE:
        paragraphs = [p.strip() for p in PARAGRAPHS.split(prose) if p.strip()]
        first, last = paragraphs[0], paragraphs[-1]
        first_points = len(first) <= SHORT_PARAGRAPH and (
            first.endswith((":", "：")) or bool(POINTS_AT_MATERIAL.find(_normal(first)))
        )
        last_points = len(last) <= SHORT_PARAGRAPH and bool(POINTS_AT_MATERIAL.find(_normal(last)))
        if first_points != last_points:
            prose = first if first_points else last
        else:
            ends = [first, last] if len(paragraphs) > 1 else [first]
            short = [p for p in ends if len(p) <= SHORT_PARAGRAPH]
            prose = "\n\n".join(short) if short else prose[:EDGE] + "\n\n" + prose[-EDGE:]
    colon = HEAD_COLON.search(prose, 0, 200)
    if colon and prose[colon.end() :].strip():
        return prose[: colon.start()], prose[colon.end() :], code
    return prose, "", code


def _normal(text: str) -> str:
    return " ".join(QUOTED.sub(" ", text).lower().split())


def _score_ask(parts: tuple[str, str, bool], damping: float = 1.0, follow_up: bool = False) -> _Score:
    """The ask's own score: intent signals, notation, constraints, code and length.

    A follow-up in a conversation is not penalised for being short: its
    shortness says nothing about the problem it continues.
    """
    head, tail, code = parts
    hits = INTENTS.find(_normal(head))
    simple = any(s.weight < 0 for s in hits)
    ask = head if simple or not tail else f"{head}\n{tail}"
    if ask is not head:
        hits = INTENTS.find(_normal(ask))
        simple = any(s.weight < 0 for s in hits)
    if BIG_O.search(ask):
        hits.setdefault(ALGORITHM, set()).add("big-O")
    size = text_tokens(ask)
    score = _Score(simple_intent=simple, technical=code or not TECHNICAL.isdisjoint(hits))
    for signal, terms in hits.items():
        if (signal.short_only and size > FOLLOW_UP) or (size <= signal.min_tokens and not follow_up):
            continue
        weight = signal.weight * damping if signal.weight > 0 else signal.weight
        if signal.name in DENSE and len(terms) >= DENSE[signal.name]:
            weight += 1.0 * damping if signal.name == "math" else 0.5 * damping
        score.add(signal.name, weight)
    notation = len(MATH_SYMBOL.findall(ask)) + len(MATH_ASCII.findall(ask))
    if notation:
        score.technical = True
        score.add("math notation", 1.5 if notation == 1 else 2.0 if notation == 2 else 3.0)
    if len(QUANTITY.findall(ask)) >= 2:
        score.add("constraints", 1.0)
    if code and not simple:
        score.add("pasted code with an open question", 1.0)
    if not simple:
        _add_structure(score, ask, size, damping)
    strongest = max((w for w in score.signals.values() if w > 0), default=0.0)
    if size <= SHORT_ASK and strongest < STRONG and not follow_up:
        score.add("short ask", -1.0)
    return score


def _add_structure(score: _Score, ask: str, size: int, damping: float) -> None:
    """The shape of an open ask, in any language: its length, its questions, its specific terms."""
    if size >= LONG_ASK:
        score.add("detailed ask", 1.0 * damping)
    elif size >= DETAILED_ASK:
        score.add("detailed ask", 0.5 * damping)
    if len(QUESTION.findall(ask)) >= 2:
        score.add("several questions", 0.5 * damping)
    terms = {t.casefold() for t in SPECIFIC_TERM.findall(ask)} if not ask.isupper() else set()
    if len(terms) >= SPECIFIC_TERMS:
        score.add("specific terms", 0.5 * damping)


def _is_pipeline(prompt: str) -> bool:
    """Whether a system prompt is itself a simple task (label, extract, translate, summarise...).

    Judged by its task statement, the opening sentences: "Classify the
    sentiment of the user's text. Answer with one word." An application's
    prompt opens with a persona and a purpose ("You are Quill, the assistant
    of a law firm...") and keeps simple verbs for its rules further down
    ("acknowledge it in one sentence", "quote the label text", "do not mention
    these instructions"): those rules say how to answer, not that the task is
    simple.
    """
    text = _normal(_task_statement(prompt))
    return bool(PIPELINE_TASK.find(text)) or any(s in PIPELINE_INTENTS for s in INTENTS.find(text))


SENTENCE_END = re.compile(r"[.!?。！？](?:\s|$)|[。！？]|\n\s*\n")


def _task_statement(prompt: str) -> str:
    """The first two sentences of a system prompt (at most :data:`TASK_STATEMENT` characters)."""
    text = prompt[:TASK_STATEMENT].strip()
    first = SENTENCE_END.search(text)
    second = SENTENCE_END.search(text, first.end()) if first else None
    return text[: second.end()] if second else text


def classify(payload: Mapping[str, Any]) -> TierDecision:
    """The tier a chat completions request needs, with the score and reason behind it."""
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return TierDecision("standard", 0.0, "uncertain: no messages to judge")
    users = _last_user_turns(messages, HISTORY_TURNS + 1)
    if not users:
        return TierDecision("standard", 0.0, "uncertain: no user message to judge")
    system = _system_prompt(messages)

    pipeline = bool(system) and _is_pipeline(system)
    parts = _instruction(users[-1])
    head = parts[0]
    follow_up = len(users) > 1 and not TOPIC.find(_normal(head))
    # Earlier turns are judged by their asks, as the current one is: pasted material is never read.
    history = users[-1 - HISTORY_TURNS : -1] if follow_up else []
    earlier = [_score_ask(_instruction(text, HISTORY_SCAN)) for text in history]
    best = max((score.total for score in earlier), default=0.0)
    # Shortness says nothing about the problem a follow-up continues, if there is one: a short ask
    # after small talk, look-ups and small edits in a conversation about nothing technical is judged
    # as a first ask would be.
    technical = follow_up and (
        any(score.technical and not score.simple_intent for score in earlier) or _technical(_last_answer(messages))
    )
    continues = follow_up and (technical or best >= ECONOMY_BELOW)
    own = _score_ask(parts, PIPELINE_DAMPING if pipeline else 1.0, continues)
    if pipeline:
        own.add(PIPELINE.name, PIPELINE.weight)
    total, inherited = own.total, False
    if follow_up and not own.simple_intent:
        context = best if text_tokens(head) <= FOLLOW_UP else best - 1.0
        if not own.signals or context > total:
            total, inherited = context, True
        if technical:
            own.add("follow-up in a technical conversation", TECHNICAL_FOLLOW_UP)
            total += TECHNICAL_FOLLOW_UP
    return _decide(total, own, inherited)


def _last_user_turns(messages: list[Any], count: int) -> list[str]:
    """The texts of the last ``count`` user messages, oldest first."""
    turns: list[str] = []
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            turns.append(_text(message.get("content")))
            if len(turns) == count:
                break
    return turns[::-1]


def _system_prompt(messages: list[Any]) -> str:
    """The first system (or developer) message before the conversation starts, if any."""
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            return _text(message.get("content"))
        if role == "user":
            break
    return ""


def _last_answer(messages: list[Any]) -> str:
    """The assistant's last answer before the current ask (its start)."""
    seen_user = False
    for message in reversed(messages):
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "user":
            seen_user = True
        elif seen_user and message.get("role") == "assistant":
            return _text(message.get("content"))[:ANSWER_SCAN]
    return ""


def _technical(answer: str) -> bool:
    """Whether the start of an answer is about a technical or mathematical subject."""
    if "```" in answer or MATH_SYMBOL.search(answer) or MATH_ASCII.search(answer):
        return True
    return not TECHNICAL.isdisjoint(INTENTS.find(_normal(answer)))


def _decide(total: float, own: _Score, inherited: bool) -> TierDecision:
    if total >= PREMIUM_AT:
        tier: Tier = "premium"
    elif total < ECONOMY_BELOW:
        tier = "economy"
    else:
        tier = "standard"
    if inherited:
        names = ["follow-up, scored by the conversation", *(n for n in own.signals if n.startswith("follow-up"))]
    else:
        decisive = [(w, n) for n, w in own.signals.items() if (w > 0) == (total >= 0)]
        names = [n for _, n in sorted(decisive, key=lambda item: -abs(item[0]))[:3]]
    why = ", ".join(names) if names else "no clear signal"
    if tier == "standard":
        why = f"uncertain: {why}"
    return TierDecision(tier, round(total, 2), f"{why} (score {total:+.1f})")


def rule_tier(payload: Mapping[str, Any], rules: Iterable[tuple[str, Tier]]) -> Tier | None:
    """The tier of the first rule whose text the system prompt contains (case-insensitive), if any.

    ``rules`` are (text, tier) pairs in the route's order; the system prompt is
    every ``system``/``developer`` message of the request.
    """
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return None
    prompt = "\n".join(
        _text(m.get("content"))
        for m in messages
        if isinstance(m, Mapping) and m.get("role") in ("system", "developer")
    ).casefold()
    if not prompt:
        return None
    for text, tier in rules:
        if text.casefold() in prompt:
            return tier
    return None
