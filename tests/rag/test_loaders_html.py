"""HTML loading: boilerplate removed, sections by heading, links resolved, tables by row, encodings."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmlab.errors import DataError
from llmlab.rag.loaders import load_path
from llmlab.rag.loaders.html import load_html, meta_charset, page_links, parse_html

PAGE = """<!DOCTYPE html>
<html><head><title>Guide | Example site</title></head>
<body>
<nav><a href="/">Home</a> <a href="/about.html">About us</a> <a href="/contact.html">Contact</a></nav>
<article>
<h1>Installing the tool</h1>
<p>The tool installs with one command and needs no network once the packages are on disk. See the
<a href="../ref/options.html">options page</a> for every flag it takes.</p>
<h2>From source</h2>
<p>Clone the repository and run the bootstrap target; it builds a virtual environment in the folder.</p>
<h3>Requirements</h3>
<table><tr><th>Package</th><th>Version</th></tr><tr><td>torch</td><td>2.13</td></tr>
<tr><td>numpy</td><td>1.26</td></tr></table>
<ul><li>a C compiler for the optional extension</li><li>about two gigabytes of disk space</li></ul>
<h2>Checking the install</h2>
<p>Run the test suite; every test should pass in a few seconds on a laptop.</p>
</article>
<footer>Copyright 2026 Example Corp. All rights reserved. Privacy policy. Cookie settings.</footer>
</body></html>
"""


def test_sections_links_tables_and_boilerplate(tmp_path):
    path = tmp_path / "docs" / "guide" / "install.html"
    path.parent.mkdir(parents=True)
    path.write_text(PAGE, encoding="utf-8")
    doc = load_path(path)
    assert (doc.source_type, doc.title, doc.warnings) == ("html", "Installing the tool", [])
    assert [u.heading_path for u in doc.units] == [
        ("Installing the tool",),
        ("Installing the tool", "From source"),
        ("Installing the tool", "From source", "Requirements"),
        ("Installing the tool", "Checking the install"),
    ]
    assert doc.units[0].text.startswith("Installing the tool\n\nThe tool installs with one command")
    assert doc.units[2].text == (
        "Requirements\n\nPackage | Version\ntorch | 2.13\nnumpy | 1.26\n\n"
        "- a C compiler for the optional extension\n- about two gigabytes of disk space"
    )
    full = "\n".join(u.text for u in doc.units)
    assert "Copyright" not in full and "About us" not in full
    assert doc.metadata["links"] == (tmp_path / "docs" / "ref" / "options.html").as_uri()


def test_cp1252_page_without_meta_charset(tmp_path):
    body = "<html><body><h1>Caf\xe9 menu</h1><p>Cr\xe8me br\xfbl\xe9e \x96 \x80 5, the na\xefve choice of every guest who comes in.</p></body></html>"
    path = tmp_path / "menu.htm"
    path.write_bytes(body.encode("latin-1"))
    doc = load_path(path)
    assert doc.metadata["encoding"] == "cp1252"
    assert "Crème brûlée – € 5, the naïve choice" in doc.units[0].text


def test_meta_charset_is_honoured(tmp_path):
    """ISO-8859-15 maps 0xA4 to the euro sign (cp1252 would give "¤"): the declared charset must win."""
    html = '<html><head><meta charset="iso-8859-15"><title>Prices</title></head><body><p>It costs 5 \xa4 at the door for every visitor who comes.</p></body></html>'
    doc = load_html(html.encode("latin-1"), "/x/prices.html")
    assert doc.metadata["encoding"] == "iso8859-15"
    assert "It costs 5 € at the door" in doc.units[0].text
    assert (
        meta_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">')
        == "Shift_JIS"
    )


def test_base_href_and_page_links():
    html = b'<html><head><base href="https://ex.org/docs/"></head><body><a href="a.html">A</a><a href="/b">B</a><a href="a.html">A</a></body></html>'
    tree, _ = parse_html(html, "page", url="https://ex.org/index.html")
    assert page_links(tree) == ["https://ex.org/docs/a.html", "https://ex.org/b"]


def test_short_page_and_page_with_only_boilerplate():
    doc = load_html(b"<html><body><div>Short.</div></body></html>", "/t/short.html")
    assert ([u.text for u in doc.units], doc.title, doc.warnings) == (["Short."], "short", [])
    doc = load_html(
        b"<html><body><footer>Copyright 2026</footer><script>x=1</script></body></html>", "/t/f.html"
    )
    assert (doc.units, doc.warnings) == ([], ["/t/f.html: no text found in the page"])


def test_whitespace_page_is_an_error():
    with pytest.raises(DataError, match=r"^/t/blank.html: the page holds only whitespace"):
        load_html(b"  \n ", "/t/blank.html")


def test_xhtml_with_xml_declaration(tmp_path):
    page = '<?xml version="1.0" encoding="utf-8"?><html><body><p>Déjà vu, an XHTML page that declares its encoding.</p></body></html>'
    path = Path(tmp_path / "x.xhtml")
    path.write_bytes(page.encode())
    assert "Déjà vu" in load_path(path).units[0].text


# A comment-heavy Chinese news page (issue 17): trafilatura dropped the text after each comment inside the
# first paragraph (it came out as "市政府"), and conditional-comment junk must not leak into the text.
CN_PAGE = """<html><head><meta charset="utf-8"><title>城市交通新计划</title></head><body><article>
<p>市政府 <!--keyword-->今天<!--/keyword--> <!--keyword-->宣布<!--/keyword--> 新的交通计划，地铁和公交线路 $20 将在明年全面调整，覆盖全市居民的日常出行。专家表示，<!-- -->这项政策 <!-- -->对于改善交通，具有重要意义，同时也将带动相关产业的发展 <!-- -->和<!-- -->就业<!-- --> 机会的增加，多位研究人员 $50 认为新的计划兼顾了效率与公平。</p>
<p>交通委员会负责人介绍说，新计划 $20 包括十二条新的公交线路，和两条地铁延长线。所有线路都将使用新能源车辆。并且在高峰时段增加发车频率，方便市民上下班。有关部门已经开始准备各项配套措施。包括道路改造，站点建设和信息系统升级。</p>
<p>据了解，<a href="/plan.html">这项计划</a>的总投资约为三百亿元，其中一半来自市级财政，其余部分通过发行专项债券和引入社会资本解决。市民可以通过官方网站查询线路调整的详细信息，并在下个月举行的听证会上提出意见和建议。</p>
<p>另据报道，周边城市也在研究类似的方案，希望通过区域合作，实现公交卡互通和换乘优惠，让跨城通勤的居民享受到更加便捷的服务。相关部门表示，将在明年年初公布具体的实施时间表。</p>
<!--[if !IE]>|xGv00|3aa77d0fa1d2b9a2fd5bbe1fa0d4c6b7<![endif]-->
</article></body></html>"""


def test_comments_inside_paragraphs_do_not_cut_the_text():
    doc = load_html(CN_PAGE.encode(), "/t/news.html")
    text = "\n\n".join(u.text for u in doc.units)
    assert text.startswith("市政府 今天 宣布 新的交通计划，地铁和公交线路 $20 将在明年全面调整")
    assert "多位研究人员 $50 认为新的计划兼顾了效率与公平。\n\n交通委员会负责人介绍说" in text
    assert "相关部门表示，将在明年年初公布具体的实施时间表。" in text
    assert "xGv00" not in text and "keyword" not in text


ARTICLE = """<!DOCTYPE html>
<html lang="en-GB"><head><title>Harbour bridge reopens after repairs | The Coast Herald</title>
<meta name="author" content="By Mara Jensen">
<meta property="article:published_time" content="2024-03-12T08:30:00+00:00">
<meta property="og:site_name" content="The Coast Herald">
<script>var tracking = "Order Reprints";</script>
<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": "2024-03-12"}</script>
</head><body>
<nav><a href="/">Home</a> <a href="/news">News</a> <a href="/sport">Sport</a></nav>
<article><h1>Harbour bridge reopens after repairs</h1>
<p>The harbour bridge reopened to traffic on Tuesday after eight months of repairs to its steel deck, the city
council said. Engineers replaced corroded plates and repainted the main span, and the work came in under budget.</p>
<p>Council member <a href="/people/ann-lee">Ann Lee</a><span class="card"><a href="/people/ann-lee">Ann Lee</a>
<a href="/news/1">Council backs new ferry route</a> <a href="/news/2">Budget vote delayed again</a>
<a href="/people/ann-lee">MORE</a></span> said the reopening would cut commuting times for thousands of people
who had taken the long road around the bay since last summer.</p>
<p>Cyclists will get a separate lane from next month, when the last barriers are removed and the new lights are
switched on along the whole length of the crossing.</p>
<p>Related:</p>
<ul><li><a href="/news/3">Ferry timetable changes for the spring</a></li>
<li><a href="/news/4">New cycle lanes planned for the old town</a></li>
<li><a href="/news/5">Harbour festival returns in June</a></li></ul>
</article>
<footer>Copyright 2024 The Coast Herald. All rights reserved.</footer>
</body></html>"""


def test_boilerplate_inside_the_article_is_dropped_and_metadata_kept(tmp_path):
    """Hover cards of name links and a "Related:" list of links are dropped;
    title, author ("By" removed), date, language and site name are kept; script text never leaks."""
    path = tmp_path / "bridge.html"
    path.write_text(ARTICLE, encoding="utf-8")
    doc = load_path(path)
    text = "\n\n".join(u.text for u in doc.units)
    assert "Council member Ann Lee said the reopening would cut commuting times" in text
    assert text.endswith("switched on along the whole length of the crossing.")
    for junk in (
        "Ferry timetable",
        "Related",
        "Budget vote",
        "MORE",
        "comments",
        "Order Reprints",
        "Copyright",
    ):
        assert junk not in text
    assert doc.title == "Harbour bridge reopens after repairs"
    meta = {k: v for k, v in doc.metadata.items() if k != "links"}
    assert meta == {
        "title": "Harbour bridge reopens after repairs",
        "author": "Mara Jensen",
        "date": "2024-03-12",
        "language": "en-GB",
        "site_name": "The Coast Herald",
        "encoding": "utf-8",
    }
    assert doc.metadata["links"] == "file:///people/ann-lee"  # root-relative, resolved against the file's URI


def test_metadata_from_json_ld_and_title_suffix():
    page = b"""<html><head><title>Tide tables explained - Sea Notes</title>
    <meta property="og:locale" content="fr_FR">
    <script type="application/ld+json">{"@graph": [{"@type": "Article", "author": [{"name": "Lou Marin"},
    {"name": "Sam Roy"}], "datePublished": "2023-07-01T10:00:00Z", "publisher": {"name": "Sea Notes"}}]}</script>
    </head><body><p>Tides rise and fall twice a day because the moon pulls the oceans toward it.</p></body></html>"""
    meta = load_html(page, "/t/tides.html").metadata
    assert (meta["title"], meta["author"], meta["date"], meta["language"], meta["site_name"]) == (
        "Tide tables explained",
        "Lou Marin, Sam Roy",
        "2023-07-01",
        "fr-FR",
        "Sea Notes",
    )


PROMO_PAGE = """<html><head><title>Rail strike ends</title></head><body><article><h1>Rail strike ends</h1>
<p>Start your day with the Morning Brief. Sign up for the free daily newsletter.</p>
<p>The rail strike ended on Friday after the union and the operator agreed on a two-year pay deal, the
transport ministry said in a statement published late in the evening after talks that lasted all week.</p>
<p>Readers who want the details can subscribe to the ministry's notices, the union said; the deal raises pay by
four percent this year and by three percent next year, and it shortens the week of the workers on the night
shift by two hours from the first of March.</p>
<p>Trains will run to the normal timetable from Monday, although some regional lines will need until Wednesday
to bring their rolling stock and crews back to the depots where the first services of the day begin.</p>
<p>Follow The Daily Courier on Twitter and Facebook.</p>
<p>Tell us what YOU think...</p>
<p>comments</p>
</article></body></html>"""


def test_promotions_and_trailing_buttons_at_the_edges_are_dropped():
    """A newsletter or social-media prompt among the first or last three paragraphs (at most 45 words) goes, and
    so do the one- or two-word lines that end the text; the same words inside the body stay."""
    text = "\n\n".join(u.text for u in load_html(PROMO_PAGE.encode(), "/t/strike.html").units)
    assert text.startswith("Rail strike ends\n\nThe rail strike ended on Friday")
    assert "can subscribe to the ministry's notices" in text  # the third paragraph, but 50 words: prose
    assert text.endswith("where the first services of the day begin.")
    for junk in ("Sign up", "Morning Brief", "Follow The Daily Courier", "Tell us what", "comments"):
        assert junk not in text


def test_a_short_last_line_with_a_sign_or_full_stop_is_kept():
    page = PROMO_PAGE.replace("<p>Follow The Daily Courier on Twitter and Facebook.</p>", "")
    page = page.replace("<p>Tell us what YOU think...</p>\n<p>comments</p>", "<p>© Courier wires</p>")
    text = "\n\n".join(u.text for u in load_html(page.encode(), "/t/strike.html").units)
    assert text.endswith("begin.\n\n© Courier wires")


def test_the_tree_is_html_elements_without_inert_tags_and_tails_stay():
    """trafilatura accepts only lxml.html elements; the parser gives them by a lookup done in C (not lxml.html's
    Python one), and tags with no text of their own are dropped with their tails kept."""
    import lxml.html

    page = b"""<html><head><meta name="author" content="Ann Lee"><link rel="stylesheet" href="a.css"></head>
    <body><form><input name="q"><select><option>Menu choice</option></select><button>Go</button></form>
    <p>Water boils at a lower temperature on a mountain <svg><text>icon</text></svg>because the air pressure is
    lower there, which every cook who lives high up learns <input type="hidden">soon enough.</p></body></html>"""
    tree, _ = parse_html(page, "/t/boil.html")
    assert all(isinstance(el, lxml.html.HtmlElement) for el in tree.iter())
    assert type(tree.find(".//form")) is lxml.html.HtmlElement  # not lxml.html's FormElement
    doc = load_html(page, "/t/boil.html")
    text = doc.units[0].text
    assert "on a mountain because the air pressure" in text and "learns soon enough." in text
    for junk in ("icon", "Menu choice", "Go"):
        assert junk not in text
    assert doc.metadata["author"] == "Ann Lee"  # read before the <meta> tags are dropped


def test_date_from_the_first_time_element_when_no_meta_tag_has_one():
    page = b"""<html><body><article><time datetime="2022-11-05T09:00">5 Nov</time><time datetime="2021-01-01">x</time>
    <p>The ferry to the island runs every hour in summer and every two hours for the rest of the year.</p>
    </article></body></html>"""
    assert load_html(page, "/t/ferry.html").metadata["date"] == "2022-11-05"


def test_a_list_of_linked_headlines_with_teasers_is_dropped_and_a_list_of_prose_kept():
    """Each item of the first list opens with a link of >= 3 words (after a thumbnail's empty link) followed by an
    unlinked teaser, so the links hold under LINK_SHARE of its words: still a list of other stories."""
    teasers = "".join(
        f'<li><a href="/s/{i}"><img src="t{i}.jpg"></a><a href="/s/{i}">{title}</a> {teaser}</li>'
        for i, (title, teaser) in enumerate(
            [
                (
                    "Storm closes the coast road",
                    "Drivers were told to expect delays well into the evening hours.",
                ),
                (
                    "School year starts a week late",
                    "The ministry blamed the repairs that overran in the summer.",
                ),
                (
                    "Harbour festival returns",
                    "Organisers expect the biggest crowds since the festival began.",
                ),
            ]
        )
    )
    prose = (
        "<ul><li>The first stage widens the bridge, which takes most of the spring and the early summer.</li>"
        '<li>The second stage, <a href="/plan">described in the plan</a>, adds the cycle lane on the east side.</li></ul>'
    )
    page = ARTICLE.replace(
        '<p>Related:</p>\n<ul><li><a href="/news/3">', f'{prose}<ul>{teasers}<li><a href="/news/3">'
    )
    text = "\n\n".join(u.text for u in load_html(page.encode(), "/t/bridge.html").units)
    assert "- The second stage, described in the plan, adds the cycle lane on the east side." in text
    for junk in ("Storm closes", "Drivers were told", "Harbour festival", "Organisers"):
        assert junk not in text


BODY = [
    "The city council approved the new harbour plan on Tuesday after a debate that lasted most of the evening and "
    "drew a larger crowd than any meeting since the floods of the spring before last.",
    "Under the plan the old warehouses on the east quay will be turned into flats, a school and a market hall, and "
    "the ferry terminal will move two hundred metres to the north, next to the new bus station.",
    "Work is due to start in March and to take four years; the first flats should be ready in the summer of the "
    "second year, the council said, if the builders find no surprises in the old foundations.",
    "Residents of the quay said they welcomed the market hall but feared the noise of the building work, and asked "
    "the council to keep the lorries off the narrow streets behind the church during the school run.",
]


def _article(*, top: str = "", middle: str = "", end: str = "") -> bytes:
    paragraphs = [f"<p>{p}</p>" for p in BODY]
    return (
        "<html><head><title>Harbour plan approved</title></head><body><article><h1>Harbour plan approved</h1>"
        + top
        + "".join(paragraphs[:2])
        + middle
        + "".join(paragraphs[2:])
        + end
        + "</article></body></html>"
    ).encode()


def _body_text(page: bytes) -> str:
    return "\n\n".join(u.text for u in load_html(page, "/t/harbour.html").units)


def test_lines_about_the_article_are_dropped_and_prose_that_opens_alike_kept():
    """Reading time, tag and filing lines and a bare "Updated at <time>" are about the page, not of it; a sentence
    that opens with "Published" but goes on in prose stays."""
    page = _article(
        top="<p>Reading time: 2 min</p><p>Tempo de leitura: 1 minuto</p>",
        middle="<p>Updated at 1:23 p.m.</p><p>Posted: Thursday, April 21, 2022. 10:11 pm CST.</p>"
        "<p>Published in 2019, the first plan was turned down by the harbour board in a single vote.</p>",
        end="<p>Filed under: Politics | Harbour |</p><p>4 min read</p>",
    )
    text = _body_text(page)
    for junk in ("Reading time", "Tempo de leitura", "Updated at", "Posted:", "Filed under", "min read"):
        assert junk not in text
    assert "Published in 2019, the first plan was turned down by the harbour board in a single vote." in text
    assert all(p in text for p in BODY)


def test_related_story_links_with_a_label_are_dropped_and_a_capitals_line_before_prose_kept():
    """A paragraph of links that opens with "Also on" / "Read more" goes, whatever the length of the linked title,
    and so does an all-capitals label before a block of links; an all-capitals line before prose stays."""
    also = (
        '<p><a href="/news/8">Also on harbour-news.org Council members from the opposition threatened with '
        "expulsion as the party purges the old guard before the spring election</a></p>"
    )
    dont_miss = (
        "<p>DON'T MISS</p><p>"
        + "<br>".join(
            f'<a href="/n/{i}">{title}</a> [VIDEO]'
            for i, title in enumerate(
                [
                    "Ferry fares to rise in April",
                    "Old lighthouse sold at auction",
                    "Storm closes the coast road",
                ]
            )
        )
        + "</p>"
    )
    page = _article(middle=also + dont_miss + "<p>UPDATE</p>")
    text = _body_text(page)
    for junk in (
        "Also on",
        "Council members from the opposition",
        "DON'T MISS",
        "Ferry fares",
        "Storm closes",
    ):
        assert junk not in text
    assert all(p in text for p in BODY)
    assert "UPDATE" in text


def test_an_unrendered_shortcode_button_is_dropped_and_one_around_content_kept():
    page = _article(
        middle='<p>[button link="https://harbour-news.org/submit/" type="big"] Send us YOUR harbour photos[/button]</p>'
        '<p>[sourcecode language="bash"]grep -c quay plan.txt[/sourcecode]</p>',
    )
    text = _body_text(page)
    assert "[button" not in text and "Send us YOUR harbour photos" not in text
    assert '[sourcecode language="bash"]grep -c quay plan.txt[/sourcecode]' in text
    assert all(p in text for p in BODY)


def test_copyright_source_and_comment_notes_at_the_end_are_dropped_and_prose_about_them_kept():
    """Among the last three blocks: "Copyright" with a sign or a year, "All rights reserved", a "Source:" line, the
    comment policy and a request for letters go; a sentence that opens with "Copyright" stays, and so does
    "© Courier wires" (ground truths keep such lines)."""
    notes = _article(
        end="<p>We'd like to hear what you think about this or any of our articles.</p>"
        "<p>SOURCE: News agencies</p><p>Copyright 2024 Harbour News. All rights reserved.</p>",
    )
    text = _body_text(notes)
    for junk in ("like to hear", "SOURCE", "Copyright 2024", "All rights reserved"):
        assert junk not in text
    assert text.endswith(BODY[-1]) and all(p in text for p in BODY)
    prose = "Copyright lawyers for the architects said the design of the market hall could not be copied."
    policy = _article(
        end=f"<p>{prose}</p><p>Comments are moderated and will not appear until a moderator has approved them.</p>"
        "<p>copyright ⓒ harbour-news.org</p>"
    )
    assert _body_text(policy).endswith(BODY[-1] + "\n\n" + prose)
    assert _body_text(_article(end="<p>© Courier wires</p>")).endswith("© Courier wires")


def test_text_after_a_heading_or_paragraph_outside_any_block_is_kept_as_a_paragraph():
    """trafilatura leaves text that follows a heading or a paragraph outside any element as that block's tail
    (a lead after a subheading): it is a paragraph of its own, not lost."""
    lead = "The harbour plan is the largest change to the east quay since the ferry terminal was built sixty years ago."
    after_heading = _body_text(_article(middle=f"<h2>What changes</h2>{lead}"))
    assert "What changes\n\n" + lead + "\n\n" + BODY[2] in after_heading
    after_paragraph = _body_text(_article(middle=f"<div><p>Short intro.</p>{lead}</div>"))
    assert "Short intro.\n\n" + lead + "\n\n" + BODY[2] in after_paragraph
    assert all(p in after_heading and p in after_paragraph for p in BODY)


def test_the_space_after_a_link_that_trafilatura_trims_is_put_back():
    """In a <div> of lines split by <br> with a block inside, trafilatura reads a link as a block of its own and
    trims the space after it ("east quay planwas shown"): the page has the space, so it is put back; a link
    glued to a word in the page ("CC-BY-SA" + "4.0") stays glued."""
    middle = (
        "<div>The plan was first shown in May.<br><br>\nMonths after the <a href='/plans/east-quay'>east quay "
        "plan</a> was shown, the council approved it after a long debate.<div><span>Photo: the east quay</span>"
        "</div><br><br>The licence is <a href='/licence'>CC-BY-SA</a>4.0 for the photos of the quay.<br><br>"
        "Tickets for the <strong><a href='/fair'>harbour fair</a></strong> go on sale in May.</div>"
    )
    text = _body_text(_article(middle=middle))
    assert "east quay plan was shown, the council approved it after a long debate." in text
    assert "planwas" not in text and "CC-BY-SA4.0" in text
    assert "harbour fair go on sale in May." in text  # the space is the tail of the <strong> around the link
    assert all(p in text for p in BODY)


def test_a_short_line_with_a_date_and_a_clock_time_is_dropped_and_a_sentence_with_them_kept():
    """Lines such as "sexta-feira, 22 de outubro de 2010 às 20:13" and "By Ann Lee, August 14, 2020 2:30 pm" say
    when the article was posted, not part of it; a sentence that gives a date and a time, and a time without a year, stay."""
    stamps = _article(
        top="<p>sexta-feira, 22 de outubro de 2010 às 20:13</p><p>By Ann Lee, August 14, 2020 2:30 pm</p>",
        middle="<p>20.04.2018 16:22 | Harbour News</p>",
    )
    text = _body_text(stamps)
    for junk in ("2010", "Ann Lee", "20.04.2018"):
        assert junk not in text
    assert all(p in text for p in BODY)
    sentence = "The council meets again on 12 March 2025 at 18:30."
    kept = _body_text(_article(middle=f"<p>{sentence}</p><p>Doors open at 17:45</p>"))
    assert f"{BODY[1]}\n\n{sentence}\n\nDoors open at 17:45\n\n{BODY[2]}" in kept


def test_a_post_the_article_quotes_is_kept_out_of_its_social_media_wrapper():
    """trafilatura drops <div class="social-media-embed"> and with it the tweet the article quotes; the tweet is
    taken out of its wrapper and kept, while other blocks in such wrappers still go."""
    tweet = (
        '<div class="social-media-embed"><blockquote class="twitter-tweet"><p lang="en">The new harbour plan is '
        'the best news this town has had in years <a href="https://t.co/x1">pic.twitter.com/x1</a></p>— Ann Lee '
        '(@annlee) <a href="https://twitter.com/annlee/status/1">November 18, 2019</a></blockquote>'
        '<script async src="https://platform.twitter.com/widgets.js"></script></div>'
    )
    share = '<div class="social-share"><blockquote>Share this story with your friends and family today</blockquote></div>'
    text = _body_text(_article(middle=tweet + share))
    assert "The new harbour plan is the best news this town has had in years pic.twitter.com/x1" in text
    assert "— Ann Lee (@annlee) November 18, 2019" in text
    assert "Share this story" not in text
    assert all(p in text for p in BODY)


def test_an_article_body_split_by_an_advertisement_row_is_read_whole_and_teasers_stay_out():
    """<div class="article__body"> cut in two by an advertisement row: trafilatura read only the first part; the
    second is joined to it. Containers of the same class that hold a linked title are teasers of other posts."""
    paragraphs = [f"<p>{p}</p>" for p in BODY]
    body = '<div class="grid"><div class="article__body">{}</div></div>'
    advert = '<div class="row"><div class="ad"><span>Advertisement</span></div></div>'
    page = (
        "<html><head><title>Harbour plan approved</title></head><body><main><h1>Harbour plan approved</h1>"
        + body.format("".join(paragraphs[:2]))
        + advert
        + body.format("".join(paragraphs[2:]))
        + "</main></body></html>"
    ).encode()
    text = _body_text(page)
    assert "\n\n".join(BODY) in text and "Advertisement" not in text
    teaser = (
        '<div class="post-text"><h3><a href="/fair">Harbour fair opens</a></h3><p>The fair on the quay opens on '
        "Saturday with stalls, music and a market of local food from the farms around the town.</p></div>"
    )
    listing = (
        "<html><head><title>Harbour plan approved</title></head><body><main><h1>Harbour plan approved</h1>"
        '<div class="post-text">' + "".join(paragraphs) + "</div>" + teaser + "</main></body></html>"
    ).encode()
    assert "fair on the quay" not in _body_text(listing)


def test_a_list_of_short_linked_items_that_ends_the_text_is_dropped_and_one_of_prose_kept():
    """At the end, a list of >= 3 short items each with a link lists more stories, even with words around the
    links ("YouTubers must unionize, <link>no matter what Google says</link>"); a list of longer items, or one
    in the middle of the text, stays."""
    more = (
        "<ul><li>Fishermen must unite, <a href='/a'>no matter what the council says</a></li>"
        "<li>Paid parking is not the problem. <a href='/b'>Our habits are</a></li>"
        "<li>Could a ferry <a href='/c'>run on the wind alone</a>?</li></ul>"
    )
    text = _body_text(_article(end=more))
    assert text.endswith(BODY[-1]) and "Fishermen" not in text
    kept = _body_text(_article(middle=more))
    assert "- Fishermen must unite, no matter what the council says" in kept
    steps = "".join(
        f"<li>Step {n}: the <a href='/s{n}'>plan</a> says the builders will first clear the warehouses on the east "
        "quay and then lay the new foundations.</li>"
        for n in (1, 2, 3)
    )
    assert _body_text(_article(end=f"<ul>{steps}</ul>")).endswith("lay the new foundations.")


def test_a_pull_quote_in_an_aside_is_kept_and_other_asides_dropped():
    """trafilatura drops every <aside>; one that is a quotation (a <q>, or text in quotation marks) is the
    article's pull quote and stays; a sidebar aside still goes."""
    middle = (
        "<div class='float-right'><aside><q>This will be the quay's second life</q></aside></div>"
        "<aside class='o6p93a'><span>“The market hall is the heart of the plan—think of it as the town's new "
        "square”</span></aside><aside class='widget'><h3>Most popular</h3><p>Ferry fares to rise in May</p>"
        "</aside>"
    )
    text = _body_text(_article(middle=middle))
    assert f"{BODY[1]}\n\nThis will be the quay's second life\n\n“The market hall" in text
    assert "Most popular" not in text and "Ferry fares" not in text
    assert all(p in text for p in BODY)


def test_a_prompt_to_listen_live_or_back_at_the_end_is_dropped_and_prose_about_listening_kept():
    """A line such as "Listen to Harbour Radio live at 12:45 weekdays - or listen back here." asks the reader to
    act, like a newsletter prompt; a sentence of the body about listening to a broadcast stays."""
    prompt = "<p>Listen to Harbour Radio live at 12:45 and 17:45 weekdays - or listen back here.</p>"
    text = _body_text(_article(end=prompt))
    assert text.endswith(BODY[-1]) and "Harbour Radio" not in text
    prose = "Residents can listen to the recording of the debate in the library on Saturday mornings."
    assert _body_text(_article(end=f"<p>{prose}</p>")).endswith(prose)
