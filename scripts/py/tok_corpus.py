"""The tokenizer parity corpus (tests/data/tokenizer/corpus.json), built deterministically.

Hand-written strings cover the cases the pre-tokenizers and the SPM merger treat specially
(contractions, letter/number/punctuation runs, whitespace runs incl. tabs, CR/LF and Unicode
spaces, long numbers, CJK, emoji incl. ZWJ sequences, combining marks, RTL, byte-fallback
characters, special-token texts with and without special parsing, the empty string, leading
spaces); a seeded generator adds strings stitched from the same kinds of pieces, so splitter
boundaries are hit in combinations nobody thought of. Python's `random` with a fixed seed makes
the list identical on every run.
"""

import random

SPECIAL_TEXTS = [
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|file_sep|>", "<|repo_name|>",
    "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>", "<unk>", "<mask>",
    "[multimodal]", "<unused0>", "<unused99>", "<repo_name>", "<jupyter_code>", "<filename>",
    "<s>", "</s>",
]

HAND = [
    # empty, tiny, leading/trailing spaces
    "", " ", "  ", "   ", "a", "A", " a", "  a", "   a", "a ", "a  ", " a ", "hello", " hello",
    "  hello", "   hello world", "hello world", "Hello, World!", "hello  world", "hello   world ",
    # English prose and contractions
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure it's fine; we'll see what they've done, and you'd agree.",
    "DON'T SHOUT. IT'S LOUD. THEY'RE HERE. WE'LL GO. I'VE SEEN. HE'D KNOW.",
    "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "'", "''", "'''", " 's", "rock'n'roll",
    "l'homme d'affaires", "'tis the season", "O'Neil's dog", "it’s curly", "x'y'z",
    "Mr. Smith went to Washington. He didn't like it!",
    "What is 2+2?", "What is the capital of France?",
    # code
    "def add(a, b):\n    return a + b\n",
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}",
    "if x == 1 and y != 2 or not z:\n        pass",
    "const f = (x) => x ** 2; // square",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "{\"key\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "<div class=\"main\"><p>Hello</p></div>",
    "$ ls -la | grep '^d' > out.txt 2>&1",
    "x->y; a::b<c>(); p && q || !r; i += 1; j -= 2; k <<= 3;",
    "    indented with four spaces",
    "\tindented with a tab", "\t\tdouble tab", "\t\t\tx = 1",
    "class Foo:\n    def __init__(self):\n        self.x = 0\n\n    def bar(self):\n        return self.x\n",
    "```python\nprint('hi')\n```", "# Title\n\n- item one\n- item two\n\n1. first\n2. second",
    "https://example.com/path/to/page?q=1&r=two#frag", "user@example.com", "@user #tag $var %mod",
    "C++ C# F# .NET node.js", "a_b_c __init__ CONSTANT_NAME camelCase PascalCase",
    # whitespace runs
    "\n", "\n\n", "\n\n\n", "\n\n\n\n\n\n", "\r\n", "\r\n\r\n", "\r", "\t", "\t\t", " \t ",
    " \n ", "  \n  ", "a\nb", "a\n\nb", "a \n\n b", "a\t\tb", "a\r\nb", "line1\r\nline2\rline3\nline4",
    "a    b", "a          b", " " * 17, " " * 64, "\t" * 9, "\n" * 33, " \t\n \t\n", "x \t \n y",
    "trailing spaces   ", "trailing newline\n", "   \n", "\n   ", "\t\n\t\n",
    "\u00a0nbsp\u00a0", "ideographic\u3000space", "thin\u2009space", "\u2028line sep\u2029para",
    "\x0b\x0c vertical", "next\x85line", "\u1680ogham", "\u200bzero width\u200b",
    # digits and numbers
    "0", "7", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
    "3.14159265358979", "1,000,000", "-42", "+7", "2+2=4", "1e10", "0x1F", "0b1010", "v1.2.3",
    "x1y22z333w4444", "2024-01-15T10:30:00Z", "$100.00", "€50", "¥1000", "100%",
    "9" * 100, "phone: +1 (555) 123-4567", "٣٤٥ arabic-indic", "１２３ fullwidth", "²³ superscript",
    "½ ¼ ¾", "Ⅻ roman", "ⅷ", "①②③", "𝟘𝟙𝟚",
    # CJK
    "你好，世界！", "我爱自然语言处理。", "中文文本没有空格分词很难", "日本語のテキストです。",
    "ひらがな カタカナ 漢字", "ｶﾀｶﾅ halfwidth", "한국어 텍스트입니다.", "안녕하세요 세계",
    "混合 mixed 文本 text 123", "「引用」『二重』【括弧】",
    # emoji
    "😀", "😀😃😄", "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸🇯🇵", "❤️", "1️⃣", "🧑🏾‍💻 coding",
    "I ❤️ 🍕 and 🍣!", "emoji at end 🎉", "🎉 emoji at start", "👩‍❤️‍💋‍👨", "☺︎ text style",
    # accents and combining marks
    "café", "cafe\u0301", "naïve résumé", "Zoë Brontë", "ñandú", "A\u030a vs Å", "ǅ ǈ ǋ titlecase",
    "Tiếng Việt có dấu", "Straße", "ﬁne ﬂow ligatures", "e\u0301\u0302\u0303 stacked", "\u0301 lone mark",
    "Ångström", "Ελληνικά γράμματα", "Кириллица и ёжик", "ქართული", "Հայերեն",
    "हिन्दी भाषा", "தமிழ்", "ภาษาไทย", "ພາສາລາວ", "မြန်မာ",
    # mixed scripts and RTL
    "Hello мир 世界 مرحبا שלום", "مرحبا بالعالم", "שלום עולם", "العربية 123 English",
    "\u200fRLM mark\u200e LRM", "\u202bembedded\u202c", "عدد ١٢٣ and 456", "עברית, English, עברית.",
    # byte-fallback candidates and odd code points
    "𝄞 musical", "ꙮ", "𐀀 Linear B", "\ue000 private", "\U0010fffd", "\ufffd replacement",
    "\x00", "a\x00b", "\x01\x02\x03", "\x7f del", "\u00ad soft hyphen", "\ufeffBOM", "\U0001f9ff",
    "𓀀 hieroglyph", "𠀀 ext-B", "\u0e01\u0e48\u0e32",
    # punctuation
    "!!!???", "...", "…", "—", "–", "“quoted” ‘single’", "«guillemets»", "¿Qué? ¡Sí!",
    "©®™", "a.b.c", "(parens) [brackets] {braces}", "#!/bin/bash", "<<<>>>", "===", "---",
    "***bold***", "__dunder__", "~~strike~~", "`code`", "a/b\\c", "|pipe|", "^caret^",
    # special-token texts embedded in text
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>", "text<|endoftext|>text", "<|endoftext|><|endoftext|>", " <|im_end|> ",
    "<|im_start|><|im_start|>", "<|im_start", "< |im_start| >", "<|im_start|>system\nYou are helpful.<|im_end|>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>", "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n", "<bos>hello<eos>",
    "<pad><unk><mask>", "[multimodal]", "<unused0> <unused123>", "<start_of_turn>", "\n<end_of_turn>\n",
    "<jupyter_code>print(1)<jupyter_output>1", "<repo_name>apr-qa<file_sep>main.rs", "<s>[INST] hi [/INST]</s>",
    "a<|im_end|>b<|im_start|>c", "<|im_end|>\n\n", "  <start_of_turn>  ",
]


def long_strings():
    para = ("Tokenizers split text into pieces. Byte-level BPE merges the most frequent pairs; "
            "SentencePiece scores whole pieces. Both must agree with the reference exactly, "
            "including on numbers like 3.14159 and 1,234,567, on CJK such as 中文, and on emoji 😀.")
    return [
        para,
        para * 4,
        "a" * 300,
        "ab" * 150,
        " " * 200 + "x",
        "word " * 120,
        "\n".join(f"line {i}: value = {i * i}" for i in range(40)),
        "".join(chr(0x4E00 + i * 37) for i in range(120)),
        "😀" * 50,
        "x" + "\t" * 40 + "y",
    ]


PIECES = [
    "a", "Z", "hello", "World", "don't", "'s", "'LL", " ", "  ", "\t", "\n", "\r\n", "\n\n", "   ",
    "0", "42", "1234", "3.14", "٣", "１", "½", ".", ",", "!?", "...", "—", "(", ")", "{", "}", "\"",
    "'", "`", "#", "$", "%", "&", "*", "+", "-", "=", "<", ">", "/", "\\", "|", "_", "~", "^",
    "中", "文字", "ひら", "カタ", "한", "😀", "👍🏽", "👨‍👩‍👧", "❤️", "é", "e\u0301", "ß", "Ω", "ж",
    "م", "ש", "\u00a0", "\u3000", "\u200b", "𝄞", "\ue000", "\x00",
] + SPECIAL_TEXTS


def generated(n=80, seed=20240611):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 14)
        out.append("".join(rng.choice(PIECES) for _ in range(k)))
    return out


def corpus():
    seen = set()
    strings = []
    for s in HAND + long_strings() + generated():
        if s not in seen:
            seen.add(s)
            strings.append(s)
    return strings


if __name__ == "__main__":
    c = corpus()
    print(len(c))
