// RabbitMQ's Go client (github.com/rabbitmq/amqp091-go, Debian's
// golang-github-rabbitmq-amqp091-go-dev) against Warren: what a Go order service does with
// it, in its own idioms: NotifyPublish/NotifyReturn/NotifyClose/NotifyCancel channels,
// *amqp.Error values. Run in GOPATH mode against Debian's copy:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run interop/go/go_client.go
//
// Needs AMQP_URL; with TLS_DIR and AMQPS_PORT also checks amqps. Last line: N passed, N failed
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	url            = os.Getenv("AMQP_URL")
	run            = strconv.FormatInt(time.Now().UnixNano(), 36)
	passed, failed int
)

func story(name string, s func() error) {
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return s()
	}()
	if err != nil {
		failed++
		fmt.Printf("FAIL - %s (%v)\n", name, err)
		return
	}
	passed++
	fmt.Printf("ok   - %s\n", name)
}

func check(ok bool, format string, args ...interface{}) error {
	if !ok {
		return fmt.Errorf(format, args...)
	}
	return nil
}

// first returns the first error of a list of steps, so a story reads as a sequence of checks.
func first(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func connect() (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.DialConfig(url, amqp.Config{Properties: amqp.Table{"connection_name": "interop-go"}})
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

// next waits for one value with a bound, so a broker that never answers fails the story.
func next[T any](c <-chan T, what string) (T, error) {
	select {
	case v, ok := <-c:
		if !ok {
			var zero T
			return zero, fmt.Errorf("%s: channel closed", what)
		}
		return v, nil
	case <-time.After(5 * time.Second):
		var zero T
		return zero, fmt.Errorf("%s: nothing within 5 s", what)
	}
}

// serverError is the *amqp.Error a failed call returned, as "CODE REASON".
func serverError(err error) string {
	var e *amqp.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%d %s", e.Code, e.Reason)
	}
	return fmt.Sprint(err)
}

func getWithin(ch *amqp.Channel, q string, autoAck bool) (amqp.Delivery, error) {
	for i := 0; i < 250; i++ {
		d, ok, err := ch.Get(q, autoAck)
		if err != nil || ok {
			return d, err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return amqp.Delivery{}, fmt.Errorf("no message on %s within 5 s", q)
}

func main() {
	ctx := context.Background()

	story("the connection negotiates RabbitMQ's limits and a confirmed persistent order is read back with its properties", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := first(
			check(conn.Config.ChannelMax == 2047, "channel_max %d", conn.Config.ChannelMax),
			check(conn.Config.FrameSize == 131072, "frame_max %d", conn.Config.FrameSize),
			check(conn.Properties["product"] == "Warren" || conn.Properties["product"] == "RabbitMQ", "product %v", conn.Properties["product"]),
		); err != nil {
			return err
		}
		q := "go-orders-" + run
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			return err
		}
		if err := ch.Confirm(false); err != nil {
			return err
		}
		// NotifyPublish, not deferred confirmations: amqp091-go 1.5.0 registers a deferred
		// confirmation only after sending the publish, so an ack that comes back first is
		// lost to it (and a later multiple nack, as RabbitMQ sends one, fails it instead).
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 2))
		sentAt := time.Unix(time.Now().Unix(), 0)
		err = ch.PublishWithContext(ctx, "", q, false, false, amqp.Publishing{
			ContentType:  "application/json",
			DeliveryMode: amqp.Persistent,
			MessageId:    "order-42",
			Timestamp:    sentAt,
			Priority:     3,
			Headers: amqp.Table{
				"x-order-id": int32(42),
				"lines":      []interface{}{"sku-1", "sku-2"},
				"shipping":   amqp.Table{"express": true},
				"total":      float64(19.99),
			},
			Body: []byte(`{"order":42}`),
		})
		if err != nil {
			return err
		}
		if c, err := next(confirms, "confirm"); err != nil || !c.Ack {
			return fmt.Errorf("publish not acked: %v %+v", err, c)
		}
		d, err := getWithin(ch, q, false)
		if err != nil {
			return err
		}
		defer ch.QueueDelete(q, false, false, false)
		return first(
			check(string(d.Body) == `{"order":42}`, "body %q", d.Body),
			check(d.ContentType == "application/json", "content type %q", d.ContentType),
			check(d.DeliveryMode == amqp.Persistent, "delivery mode %d", d.DeliveryMode),
			check(d.MessageId == "order-42", "message id %q", d.MessageId),
			check(d.Timestamp.Equal(sentAt), "timestamp %v", d.Timestamp),
			check(d.Priority == 3, "priority %d", d.Priority),
			check(d.Headers["x-order-id"] == int32(42), "x-order-id %#v", d.Headers["x-order-id"]),
			check(reflect.DeepEqual(d.Headers["lines"], []interface{}{"sku-1", "sku-2"}), "lines %#v", d.Headers["lines"]),
			check(reflect.DeepEqual(d.Headers["shipping"], amqp.Table{"express": true}), "shipping %#v", d.Headers["shipping"]),
			check(d.Headers["total"] == float64(19.99), "total %#v", d.Headers["total"]),
			check(d.MessageCount == 0, "message count %d", d.MessageCount),
			d.Ack(false),
		)
	})

	story("a consumer with Qos(10) receives 100 orders in order, acking each", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		q, err := ch.QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			return err
		}
		for i := 0; i < 100; i++ {
			if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte(fmt.Sprint("order-", i))}); err != nil {
				return err
			}
		}
		worker, err := conn.Channel()
		if err != nil {
			return err
		}
		if err := worker.Qos(10, 0, false); err != nil {
			return err
		}
		deliveries, err := worker.Consume(q.Name, "", false, false, false, false, nil)
		if err != nil {
			return err
		}
		for i := 0; i < 100; i++ {
			d, err := next(deliveries, "delivery")
			if err != nil {
				return err
			}
			if string(d.Body) != fmt.Sprint("order-", i) {
				return fmt.Errorf("delivery %d was %q", i, d.Body)
			}
			if err := d.Ack(false); err != nil {
				return err
			}
		}
		return nil
	})

	story("RPC over direct reply-to", func() error {
		server, s, err := connect()
		if err != nil {
			return err
		}
		defer server.Close()
		client, c, err := connect()
		if err != nil {
			return err
		}
		defer client.Close()
		requests := "go-prices-" + run
		if _, err := s.QueueDeclare(requests, false, true, false, false, nil); err != nil {
			return err
		}
		incoming, err := s.Consume(requests, "", true, false, false, false, nil)
		if err != nil {
			return err
		}
		go func() {
			for d := range incoming {
				s.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
					CorrelationId: d.CorrelationId, Body: append([]byte("price:"), d.Body...)})
			}
		}()
		replies, err := c.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
		if err != nil {
			return err
		}
		for i := 0; i < 20; i++ {
			err := c.PublishWithContext(ctx, "", requests, false, false, amqp.Publishing{
				ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: fmt.Sprint("c", i), Body: []byte(fmt.Sprint("sku-", i))})
			if err != nil {
				return err
			}
			r, err := next(replies, "reply")
			if err != nil {
				return err
			}
			if r.CorrelationId != fmt.Sprint("c", i) || string(r.Body) != fmt.Sprint("price:sku-", i) {
				return fmt.Errorf("reply %q=%q", r.CorrelationId, r.Body)
			}
		}
		return nil
	})

	story("an unroutable mandatory publish comes back on NotifyReturn before its confirm", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		returns := ch.NotifyReturn(make(chan amqp.Return, 1))
		if err := ch.Confirm(false); err != nil {
			return err
		}
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
		key := "nowhere-" + run
		if err := ch.PublishWithContext(ctx, "amq.direct", key, true, false, amqp.Publishing{Body: []byte("lost?")}); err != nil {
			return err
		}
		r, err := next(returns, "return")
		if err != nil {
			return err
		}
		c, err := next(confirms, "confirm")
		if err != nil {
			return err
		}
		return first(
			check(r.ReplyCode == 312 && r.ReplyText == "NO_ROUTE", "returned %d %s", r.ReplyCode, r.ReplyText),
			check(r.Exchange == "amq.direct" && r.RoutingKey == key && string(r.Body) == "lost?", "returned %q %q %q", r.Exchange, r.RoutingKey, r.Body),
			check(c.Ack && c.DeliveryTag == 1, "confirm %+v", c),
		)
	})

	story("channel errors come back as *amqp.Error with RabbitMQ's codes and texts, on NotifyClose too", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		missing := "go-missing-" + run
		_, err = ch.QueueDeclarePassive(missing, false, false, false, false, nil)
		want404 := fmt.Sprintf("404 NOT_FOUND - no queue '%s' in vhost '/'", missing)
		if got := serverError(err); got != want404 {
			return fmt.Errorf("passive declare: %s", got)
		}
		e, err := next(closed, "NotifyClose")
		if err != nil {
			return err
		}
		if err := check(e.Server && e.Recover && e.Code == 404, "NotifyClose %+v (a soft error: the channel closes, the connection stays)", e); err != nil {
			return err
		}

		q := "go-durable-" + run
		ch, _ = conn.Channel()
		if _, err := ch.QueueDeclare(q, true, true, false, false, nil); err != nil {
			return err
		}
		_, err = ch.QueueDeclare(q, false, true, false, false, nil)
		want406 := fmt.Sprintf("406 PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': received 'false' but current is 'true'", q)
		if got := serverError(err); got != want406 {
			return fmt.Errorf("redeclare: %s", got)
		}

		other, och, err := connect()
		if err != nil {
			return err
		}
		defer other.Close()
		ch, _ = conn.Channel()
		mine, err := ch.QueueDeclare("go-exclusive-"+run, false, false, true, false, nil)
		if err != nil {
			return err
		}
		_, err = och.QueueDeclare(mine.Name, false, false, true, false, nil)
		want405 := fmt.Sprintf("405 RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'.", mine.Name)
		if got := serverError(err); !strings.HasPrefix(got, want405) {
			return fmt.Errorf("exclusive: %s", got)
		}
		ch, _ = conn.Channel()
		_, err = ch.QueueDelete(q, false, false, false)
		return first(err, check(!conn.IsClosed(), "the connection survived three channel errors"))
	})

	story("a rejected payment is dead-lettered with an x-death header", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		dlx, parked, work := "go-dlx-"+run, "go-parked-"+run, "go-payments-"+run
		if err := first(
			ch.ExchangeDeclare(dlx, "fanout", false, true, false, false, nil),
			func() error { _, err := ch.QueueDeclare(parked, false, true, false, false, nil); return err }(),
			ch.QueueBind(parked, "", dlx, false, nil),
			func() error {
				_, err := ch.QueueDeclare(work, false, true, false, false, amqp.Table{"x-dead-letter-exchange": dlx})
				return err
			}(),
			ch.PublishWithContext(ctx, "", work, false, false, amqp.Publishing{Body: []byte("payment-7")}),
		); err != nil {
			return err
		}
		d, err := getWithin(ch, work, false)
		if err != nil {
			return err
		}
		if err := d.Reject(false); err != nil {
			return err
		}
		dead, err := getWithin(ch, parked, true)
		if err != nil {
			return err
		}
		deaths, _ := dead.Headers["x-death"].([]interface{})
		if len(deaths) != 1 {
			return fmt.Errorf("x-death %#v", dead.Headers["x-death"])
		}
		death, _ := deaths[0].(amqp.Table)
		return first(
			check(string(dead.Body) == "payment-7", "body %q", dead.Body),
			check(death["reason"] == "rejected", "reason %#v", death["reason"]),
			check(death["queue"] == work, "queue %#v", death["queue"]),
			check(death["count"] == int64(1), "count %#v", death["count"]),
			check(reflect.DeepEqual(death["routing-keys"], []interface{}{work}), "routing-keys %#v", death["routing-keys"]),
		)
	})

	story("deleting a consumed queue sends the consumer's tag on NotifyCancel", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		q := "go-cancelled-" + run
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			return err
		}
		cancels := ch.NotifyCancel(make(chan string, 1))
		if _, err := ch.Consume(q, "stock-worker", false, false, false, false, nil); err != nil {
			return err
		}
		admin, _ := conn.Channel()
		if _, err := admin.QueueDelete(q, false, false, false); err != nil {
			return err
		}
		tag, err := next(cancels, "NotifyCancel")
		return first(err, check(tag == "stock-worker", "cancelled %q", tag), check(!ch.IsClosed(), "the consumer's channel stays open"))
	})

	story("a full reject-publish queue nacks the publish", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		q, err := ch.QueueDeclare("go-stock-"+run, false, true, false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
		if err != nil {
			return err
		}
		if err := ch.Confirm(false); err != nil {
			return err
		}
		// NotifyPublish: see the first story for why not deferred confirmations
		confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 2))
		for _, body := range []string{"first", "second"} {
			if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
				return err
			}
		}
		firstOrder, err1 := next(confirms, "first confirm")
		second, err2 := next(confirms, "second confirm")
		q, err = ch.QueueDeclarePassive(q.Name, false, true, false, false, nil)
		return first(err1, err2, err, check(firstOrder.Ack && firstOrder.DeliveryTag == 1, "the first is acked: %+v", firstOrder),
			check(!second.Ack && second.DeliveryTag == 2, "the second is nacked: %+v", second),
			check(q.Messages == 1, "%d queued", q.Messages))
	})

	story("a transaction rolls back and commits", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		q, err := ch.QueueDeclare("", false, false, true, false, nil)
		if err != nil {
			return err
		}
		if err := first(
			ch.Tx(),
			ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("rolled back")}),
			ch.TxRollback(),
			ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("committed")}),
			ch.TxCommit(),
		); err != nil {
			return err
		}
		d, ok, err := ch.Get(q.Name, true)
		return first(err, check(ok && string(d.Body) == "committed" && d.MessageCount == 0, "got %q, %d more", d.Body, d.MessageCount))
	})

	story("topic and headers exchanges route as RabbitMQ does, and an exchange binds to an exchange", func() error {
		conn, ch, err := connect()
		if err != nil {
			return err
		}
		defer conn.Close()
		orders, byHeaders := "go-orders-topic-"+run, "go-orders-headers-"+run
		eu, express := "go-eu-"+run, "go-express-"+run
		if err := first(
			ch.ExchangeDeclare(orders, "topic", false, true, false, false, nil),
			ch.ExchangeDeclare(byHeaders, "headers", false, true, false, false, nil),
			ch.ExchangeBind(byHeaders, "order.#", orders, false, nil),
			func() error { _, err := ch.QueueDeclare(eu, false, true, false, false, nil); return err }(),
			func() error { _, err := ch.QueueDeclare(express, false, true, false, false, nil); return err }(),
			ch.QueueBind(eu, "order.*.eu", orders, false, nil),
			ch.QueueBind(express, "", byHeaders, false, amqp.Table{"x-match": "all", "shipping": "express", "paid": true}),
			ch.PublishWithContext(ctx, orders, "order.created.eu", false, false, amqp.Publishing{
				Headers: amqp.Table{"shipping": "express", "paid": true}, Body: []byte("a")}),
			ch.PublishWithContext(ctx, orders, "order.created.us", false, false, amqp.Publishing{
				Headers: amqp.Table{"shipping": "express", "paid": false}, Body: []byte("b")}),
			ch.PublishWithContext(ctx, orders, "order.paid.eu", false, false, amqp.Publishing{
				Headers: amqp.Table{"shipping": "standard"}, Body: []byte("c")}),
		); err != nil {
			return err
		}
		var got []string
		for _, q := range []string{eu, express} {
			for {
				d, ok, err := ch.Get(q, true)
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				got = append(got, q[:len(q)-len(run)-1]+":"+string(d.Body))
			}
		}
		want := []string{"go-eu:a", "go-eu:c", "go-express:a"}
		return check(reflect.DeepEqual(got, want), "routed %v, want %v", got, want)
	})

	tlsDir, amqpsPort := os.Getenv("TLS_DIR"), os.Getenv("AMQPS_PORT")
	if tlsDir != "" && amqpsPort != "" {
		story("amqps with the test CA: publish and get over TLS", func() error {
			pem, err := os.ReadFile(tlsDir + "/ca.pem")
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(pem)
			conn, err := amqp.DialTLS("amqps://guest:guest@localhost:"+amqpsPort+"/", &tls.Config{RootCAs: roots, ServerName: "localhost"})
			if err != nil {
				return err
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			q, err := ch.QueueDeclare("", false, false, true, false, nil)
			if err != nil {
				return err
			}
			if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("over tls")}); err != nil {
				return err
			}
			d, err := getWithin(ch, q.Name, true)
			return first(err, check(string(d.Body) == "over tls", "body %q", d.Body))
		})
	}

	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
