"""Kuwa's Modelfile: parsing, merging, and applying it to a conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuwa.errors import InvalidRequestError
from kuwa.executors.modelfile import Modelfile, ModelfileError
from kuwa.schemas import GenerationParams, Job, Message, Passage

U, A, S = "user", "assistant", "system"


def parse_error(text: str) -> ModelfileError:
    with pytest.raises(ModelfileError) as info:
        Modelfile.parse(text)
    return info.value


# --- values and quoting ---------------------------------------------------------------------
def test_bare_value_is_the_rest_of_the_line_stripped() -> None:
    mf = Modelfile.parse("SYSTEM   You are a careful translator.   \n")
    assert mf.system == "You are a careful translator."


def test_double_quoted_value_with_escapes() -> None:
    mf = Modelfile.parse(r'SYSTEM "Say \"hi\" and a backslash \\ then \n stays"')
    assert mf.system == 'Say "hi" and a backslash \\ then \\n stays'


def test_empty_double_quoted_value() -> None:
    assert Modelfile.parse('SYSTEM ""').system == ""


def test_triple_quoted_value_spans_lines() -> None:
    text = 'SYSTEM """\nYou are a bot.\n\n  Indented line "quoted"\n"""\nPARAMETER seed 7\n'
    mf = Modelfile.parse(text)
    assert mf.system == 'You are a bot.\n\n  Indented line "quoted"\n'
    assert mf.parameters["seed"] == 7


def test_triple_quoted_on_one_line_and_text_after_the_opening_quotes() -> None:
    assert Modelfile.parse('TEMPLATE """{{ .Prompt }}"""').template == "{{ .Prompt }}"
    mf = Modelfile.parse('SYSTEM """first\nsecond"""')
    assert mf.system == "first\nsecond"


def test_triple_quoted_keeps_backslashes_and_hashes_as_written() -> None:
    mf = Modelfile.parse('TEMPLATE """a\\nb # not a comment\n# nor this\n"""')
    assert mf.template == "a\\nb # not a comment\n# nor this\n"


def test_crlf_line_endings_and_bom() -> None:
    mf = Modelfile.parse('\ufeffSYSTEM """\r\nhello\r\n"""\r\nPARAMETER top_p 0.5\r\n')
    assert mf.system == "hello\n"
    assert mf.parameters["top_p"] == 0.5


# --- comments and blank lines ---------------------------------------------------------------
def test_full_line_comments_and_blank_lines_are_ignored() -> None:
    mf = Modelfile.parse("# a comment\n\n   # indented comment\n\nSYSTEM hi\n\n")
    assert mf.system == "hi"


def test_inline_comments_after_values_are_stripped() -> None:
    text = (
        "SYSTEM be brief  # the comment\n"
        'PARAMETER stop "<|eot|>" # after quotes\n'
        'BEFORE-PROMPT """x""" # after triple quotes\n'
        'AFTER-PROMPT """\ny\n""" # after a closing line\n'
    )
    mf = Modelfile.parse(text)
    assert mf.system == "be brief"
    assert mf.parameters["stop"] == ("<|eot|>",)
    assert mf.before_prompt == "x"
    assert mf.after_prompt == "y\n"


def test_hash_inside_quotes_or_a_word_is_kept() -> None:
    mf = Modelfile.parse('SYSTEM "use # freely"\nMESSAGE user I like C#\n')
    assert mf.system == "use # freely"
    assert mf.messages == (Message(U, "I like C#"),)


# --- commands -------------------------------------------------------------------------------
def test_commands_are_case_insensitive() -> None:
    text = (
        "from llama3\nSystem hi\nparameter temperature 0.3\nMessage User hello\n"
        "Before-Prompt [\nafter-PROMPT ]\ntemplate t\nLicense MIT\nadapter ./lora\n"
    )
    mf = Modelfile.parse(text)
    assert mf.system == "hi"
    assert mf.parameters == {"temperature": 0.3}
    assert mf.messages == (Message(U, "hello"),)
    assert (mf.before_prompt, mf.after_prompt, mf.template) == ("[", "]", "t")


def test_from_license_and_adapter_are_accepted_and_ignored() -> None:
    mf = Modelfile.parse('FROM ./model.gguf\nLICENSE """\nMIT\nlong text\n"""\nADAPTER x\n')
    assert mf == Modelfile()


def test_empty_text_gives_an_empty_modelfile() -> None:
    assert Modelfile.parse("") == Modelfile()
    assert Modelfile.parse("\n# only a comment\n") == Modelfile()


def test_parameter_values_are_typed() -> None:
    text = (
        "PARAMETER num_ctx 4096\nPARAMETER temperature 0.7\nPARAMETER repeat_penalty 1e-1\n"
        "PARAMETER use_mmap false\nPARAMETER penalize_newline TRUE\nPARAMETER mirostat_tau -5\n"
        'PARAMETER flavour vanilla\nPARAMETER quoted "42"\nPARAMETER Top_K 40\n'
    )
    assert dict(Modelfile.parse(text).parameters) == {
        "num_ctx": 4096,
        "temperature": 0.7,
        "repeat_penalty": 0.1,
        "use_mmap": False,
        "penalize_newline": True,
        "mirostat_tau": -5,
        "flavour": "vanilla",
        "quoted": "42",
        "top_k": 40,
    }


def test_integer_temperature_becomes_a_float_and_later_values_win() -> None:
    mf = Modelfile.parse("PARAMETER temperature 1\nPARAMETER temperature 0\n")
    assert mf.parameters["temperature"] == 0.0
    assert isinstance(mf.parameters["temperature"], float)


def test_repeated_stop_accumulates_and_stays_text() -> None:
    text = 'PARAMETER stop <|im_end|>\nPARAMETER stop "\\n\\n"\nPARAMETER stop 42\n'
    assert Modelfile.parse(text).parameters["stop"] == ("<|im_end|>", "\\n\\n", "42")


def test_kuwaparam_is_an_alias_of_parameter() -> None:
    assert Modelfile.parse("KUWAPARAM seed 3").parameters == {"seed": 3}


def test_message_presets_keep_their_order() -> None:
    text = (
        'MESSAGE user "Is Toronto in Canada?"\nMESSAGE assistant yes\n'
        'MESSAGE SYSTEM """Be\nterse"""\n'
    )
    assert Modelfile.parse(text).messages == (
        Message(U, "Is Toronto in Canada?"),
        Message(A, "yes"),
        Message(S, "Be\nterse"),
    )


def test_repeated_system_and_prompts_add_up() -> None:
    text = "SYSTEM one\nSYSTEM two\nBEFORE-PROMPT a\nBEFORE-PROMPT b\nAFTER-PROMPT c\n"
    mf = Modelfile.parse(text)
    assert mf.system == "one\ntwo"
    assert (mf.before_prompt, mf.after_prompt) == ("ab", "c")


# --- errors ---------------------------------------------------------------------------------
def test_unknown_command_names_the_line() -> None:
    err = parse_error("SYSTEM hi\n\nFOO bar\n")
    assert err.line == 3
    assert "line 3" in str(err) and "'FOO'" in str(err)


def test_a_second_line_of_a_bare_value_is_an_unknown_command() -> None:
    err = parse_error("SYSTEM first line\nsecond line\n")
    assert err.line == 2
    assert "triple quotes" in str(err)


def test_unterminated_triple_quote_reports_where_it_started() -> None:
    err = parse_error('PARAMETER seed 1\nSYSTEM """\nline\nmore\n')
    assert err.line == 2
    assert str(err).startswith("Modelfile line 2:")
    assert "never closed" in str(err)


def test_unterminated_double_quote() -> None:
    err = parse_error('\nSYSTEM "abc\n"')
    assert err.line == 2
    assert "closing" in str(err)


def test_text_after_a_closing_quote_is_an_error() -> None:
    err = parse_error('SYSTEM "a" b')
    assert err.line == 1 and "'b'" in str(err)
    err = parse_error('SYSTEM """\na\n""" trailing\n')
    assert err.line == 3


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("PARAMETER temperature", "needs a value"),
        ("PARAMETER temperature # only a comment", "needs a value"),
        ("PARAMETER", "needs a name and a value"),
        ("PARAMETER temperature hot", "must be a number"),
        ("PARAMETER temperature -1", "0 or more"),
        ("PARAMETER top_p 1.5", "between 0 and 1"),
        ("PARAMETER max_tokens 2.5", "whole number"),
        ("PARAMETER max_tokens 0", "at least 1"),
        ("PARAMETER seed abc", "whole number"),
        ('PARAMETER stop ""', "non-empty"),
        ("MESSAGE", "needs a role and a text"),
        ("MESSAGE bot hello", "'bot' is not one of system, user or assistant"),
        ("MESSAGE user", "needs a value"),
        ("SYSTEM", "needs a value"),
    ],
)
def test_malformed_lines_say_what_is_wrong(text: str, words: str) -> None:
    err = parse_error(f"# header\n{text}\n")
    assert err.line == 2
    assert words in str(err)
    assert str(err).startswith("Modelfile line 2: ")


def test_error_is_a_client_error_with_the_one_json_shape() -> None:
    err = parse_error("BAD")
    assert isinstance(err, InvalidRequestError)
    assert err.status == 400
    assert err.body()["error"]["code"] == "invalid_modelfile"
    assert err.body()["error"]["message"] == str(err)


def test_load_reads_a_file_and_names_it_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "Modelfile"
    good.write_text("SYSTEM 你好\n", encoding="utf-8")
    assert Modelfile.load(good).system == "你好"
    bad = tmp_path / "Bad"
    bad.write_text("SYSTEM ok\nNOPE\n", encoding="utf-8")
    with pytest.raises(ModelfileError) as info:
        Modelfile.load(bad)
    assert str(info.value).startswith(f"{bad} line 2: ")
    with pytest.raises(ModelfileError, match="cannot read"):
        Modelfile.load(tmp_path / "missing")


# --- merge ----------------------------------------------------------------------------------
MODEL = Modelfile.parse(
    "SYSTEM model system\nPARAMETER temperature 0.1\nPARAMETER stop A\nPARAMETER num_ctx 4096\n"
    "MESSAGE user m1\nTEMPLATE model-template\nBEFORE-PROMPT [\nAFTER-PROMPT ]\n"
)


def test_merge_bot_fields_win_and_messages_concatenate() -> None:
    bot = Modelfile.parse(
        "SYSTEM bot system\nPARAMETER temperature 0.9\nPARAMETER stop B\nMESSAGE assistant b1\n"
        "AFTER-PROMPT >>\n"
    )
    merged = MODEL.merge(bot)
    assert merged.system == "bot system"
    assert dict(merged.parameters) == {"temperature": 0.9, "stop": ("B",), "num_ctx": 4096}
    assert merged.messages == (Message(U, "m1"), Message(A, "b1"))
    assert merged.template == "model-template"
    assert (merged.before_prompt, merged.after_prompt) == ("[", ">>")


def test_merge_empty_fields_do_not_override() -> None:
    assert MODEL.merge(None) is MODEL
    assert MODEL.merge(Modelfile()) == MODEL
    assert MODEL.merge(Modelfile.parse('SYSTEM ""')).system == "model system"
    assert Modelfile().merge(MODEL) == MODEL


# --- apply ----------------------------------------------------------------------------------
def test_apply_without_a_system_message_prepends_one() -> None:
    mf = Modelfile.parse("SYSTEM be nice")
    assert mf.apply([Message(U, "hi")]) == (Message(S, "be nice"), Message(U, "hi"))


def test_apply_replaces_a_leading_system_message() -> None:
    mf = Modelfile.parse("SYSTEM be nice")
    convo = [Message(S, "user's system"), Message(U, "hi")]
    assert mf.apply(convo) == (Message(S, "be nice"), Message(U, "hi"))


def test_apply_without_system_keeps_the_conversation_s_system() -> None:
    convo = (Message(S, "user's system"), Message(U, "hi"))
    assert Modelfile().apply(convo) == convo
    assert Modelfile.parse("MESSAGE user preset").apply(convo) == (
        Message(S, "user's system"),
        Message(U, "preset"),
        Message(U, "hi"),
    )


def test_apply_puts_presets_after_system_and_before_the_conversation() -> None:
    mf = Modelfile.parse("SYSTEM sys\nMESSAGE user q\nMESSAGE assistant a\nMESSAGE system more\n")
    convo = [Message(U, "first"), Message(A, "reply"), Message(U, "second")]
    assert mf.apply(convo) == (
        Message(S, "sys\nmore"),
        Message(U, "q"),
        Message(A, "a"),
        Message(U, "first"),
        Message(A, "reply"),
        Message(U, "second"),
    )


def test_before_and_after_prompt_wrap_only_the_last_user_message() -> None:
    mf = Modelfile.parse('BEFORE-PROMPT """Translate:\n"""\nAFTER-PROMPT " (one line)"\n')
    convo = [Message(U, "one"), Message(A, "uno"), Message(U, "two"), Message(A, "prefill")]
    assert mf.apply(convo) == (
        Message(U, "one"),
        Message(A, "uno"),
        Message(U, "Translate:\ntwo (one line)"),
        Message(A, "prefill"),
    )


def test_before_prompt_does_not_touch_presets_or_a_conversation_without_user() -> None:
    mf = Modelfile.parse("BEFORE-PROMPT >\nMESSAGE user preset\n")
    assert mf.apply([Message(S, "s")]) == (Message(S, "s"), Message(U, "preset"))
    assert mf.apply([Message(U, "x")]) == (Message(U, "preset"), Message(U, ">x"))


def test_apply_does_not_change_its_input() -> None:
    convo = [Message(S, "s"), Message(U, "x")]
    Modelfile.parse("SYSTEM t\nBEFORE-PROMPT >").apply(convo)
    assert convo == [Message(S, "s"), Message(U, "x")]


# --- generation parameters ------------------------------------------------------------------
def test_generation_params_fill_in_what_the_request_left_unset() -> None:
    mf = Modelfile.parse(
        "PARAMETER temperature 0.2\nPARAMETER top_p 0.9\nPARAMETER num_predict 128\n"
        "PARAMETER seed 5\nPARAMETER stop END\nPARAMETER num_ctx 4096\n"
    )
    assert mf.generation_params(GenerationParams()) == GenerationParams(
        temperature=0.2, top_p=0.9, max_tokens=128, stop=("END",), seed=5
    )


def test_the_request_wins_over_the_modelfile() -> None:
    mf = Modelfile.parse("PARAMETER temperature 0.2\nPARAMETER max_tokens 10\nPARAMETER stop X")
    request = GenerationParams(
        temperature=1.0, top_p=0.5, max_tokens=99, stop=("Y",), seed=1, ignore_eos=True
    )
    assert mf.generation_params(request) == request


def test_max_tokens_is_preferred_to_num_predict_and_minus_one_means_no_limit() -> None:
    both = Modelfile.parse("PARAMETER num_predict 5\nPARAMETER max_tokens 7")
    assert both.generation_params(GenerationParams()).max_tokens == 7
    unlimited = Modelfile.parse("PARAMETER num_predict -1")
    assert unlimited.generation_params(GenerationParams()).max_tokens is None
    assert Modelfile().generation_params(GenerationParams()) == GenerationParams()


def test_sampling_parameters_fill_in_unset_request_values() -> None:
    from kuwa.schemas import GenerationParams

    mf = Modelfile.parse(
        "PARAMETER top_k 40\nPARAMETER repeat_penalty 1.1\nPARAMETER presence_penalty 0.2\n"
    )
    p = mf.generation_params(GenerationParams(presence_penalty=0.5))
    assert (p.top_k, p.repetition_penalty, p.presence_penalty) == (40, 1.1, 0.5)


# --- PASSAGES-TEMPLATE: documents' passages in the prompt ------------------------------------
PASSAGES = (
    Passage(1, "report.pdf", 3, "The code is 7429."),
    Passage(2, "notes.docx", None, "Ignore {{ .Prompt }} here."),
)


def test_passages_use_the_default_template_around_the_last_user_message() -> None:
    out = Modelfile(before_prompt="Q: ").apply(
        [Message("user", "old"), Message("assistant", "a"), Message("user", "code?")], PASSAGES
    )
    assert out[0] == Message("user", "old")
    last = out[-1].content
    assert last.startswith("Answer the question from the numbered passages below")
    assert "[1] report.pdf, page 3\nThe code is 7429.\n\n[2] notes.docx\n" in last
    # Placeholders inside a passage stay as they are; BEFORE-PROMPT wraps the question.
    assert "Ignore {{ .Prompt }} here." in last and last.endswith("Question: Q: code?")


def test_a_modelfile_sets_its_own_passages_template_and_a_bot_overrides_it() -> None:
    model = Modelfile.parse('PASSAGES-TEMPLATE "Docs: {{ .Passages }} | Ask: {{.Prompt}}"')
    out = model.apply([Message("user", "hi")], PASSAGES[:1])
    assert out[-1].content == "Docs: [1] report.pdf, page 3\nThe code is 7429. | Ask: hi"
    bot = Modelfile.parse('PASSAGES-TEMPLATE """Only the question: {{ .Prompt }}"""')
    merged = model.merge(bot)
    # A template without {{ .Passages }} gets them first: a model never loses them.
    assert merged.apply([Message("user", "hi")], PASSAGES[:1])[-1].content == (
        "[1] report.pdf, page 3\nThe code is 7429.\n\nOnly the question: hi"
    )
    assert model.apply([Message("user", "hi")])[-1].content == "hi"  # no passages: unchanged


def test_passages_travel_in_the_job() -> None:
    job = Job(id="chatcmpl-1", model="m", messages=(Message("user", "x"),), passages=PASSAGES)
    assert Job.decode(job.encode()).passages == PASSAGES
    plain = Job(id="chatcmpl-2", model="m", messages=(Message("user", "x"),))
    assert b"passages" not in plain.encode() and Job.decode(plain.encode()).passages == ()


def test_the_default_template_speaks_the_askers_language() -> None:
    from kuwa.executors.passages import DEFAULT_TEMPLATES, language_of

    zh_intro = DEFAULT_TEMPLATES["zh-TW"].split("\n")[0]
    assert zh_intro.startswith("請根據下列編號的段落回答問題") and "[1] 或 [2][3]" in zh_intro

    def last(text: str, language: str | None) -> str:
        return Modelfile().apply([Message(U, text)], PASSAGES, language)[-1].content

    zh = last("代碼是多少?", "zh-TW")
    assert zh.startswith(zh_intro)
    assert "[1] report.pdf，第 3 頁\nThe code is 7429.\n\n[2] notes.docx\n" in zh  # noqa: RUF001
    assert zh.endswith("問題：代碼是多少?")  # noqa: RUF001
    # The job's language wins (any Chinese tag is zh-TW); without one, the question's script.
    assert last("What is the code?", "zh-Hant-TW").startswith(zh_intro)
    assert last("代碼是多少", "en-US").startswith("Answer the question")
    assert last("淡水老街的阿給是用什麼做的", None).startswith(zh_intro)
    assert last("What is the code of 阿給?", None).startswith("Answer the question")
    assert [language_of(None, t) for t in ("", "123", "你好 hi")] == ["en", "en", "zh-TW"]
    # A Modelfile's own template stays as written; the passages' labels follow the language.
    own = Modelfile.parse('PASSAGES-TEMPLATE "Docs: {{ .Passages }} | Ask: {{ .Prompt }}"')
    assert own.apply([Message(U, "hi")], PASSAGES[:1], "zh-TW")[-1].content == (
        "Docs: [1] report.pdf，第 3 頁\nThe code is 7429. | Ask: hi"  # noqa: RUF001
    )


def test_the_language_travels_in_the_job_to_the_executors_rules() -> None:
    from kuwa.executors.control import Control
    from kuwa.settings import Settings

    job = Job(
        id="chatcmpl-1",
        model="m",
        messages=(Message(U, "What is the code?"),),
        passages=PASSAGES,
        language="zh-TW",
    )
    assert Job.decode(job.encode()).language == "zh-TW"
    prepared = Control.from_settings(Settings()).prepare(job, lambda messages: 0)
    assert prepared.messages[-1].content.startswith("請根據下列編號的段落")
    assert b"language" not in Job(id="chatcmpl-2", model="m", messages=()).encode()
